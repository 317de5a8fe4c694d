"""Training controls: parameter groups, freezing, losses, adversarial training, augmentation,
tracking, checkpoints and resume (including a real kill of a training process)."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from ronghe import TextClassifier, backbones, load
from ronghe.modeling import TextModel
from ronghe.training import loop
from ronghe.training.augment import EmbeddingSynonyms, augment
from ronghe.training.callbacks import Callback

NET = {"max_length": 24, "batch_size": 8}


@pytest.fixture(scope="module")
def tiny_model():
    bb = backbones.resolve("minilm")
    return TextModel(backbones.load_encoder(bb.path), 2), backbones.load_tokenizer(bb.path)


def test_layerwise_lr_decay_and_head_lr(tiny_model):
    model, _ = tiny_model
    cfg = loop.LoopConfig(epochs=1, batch_size=8, learning_rate=1e-4, head_learning_rate=1e-3,
                          layer_lr_decay=0.5)
    lr_of = {}
    for g in loop.param_groups(model, cfg):
        for p in g["params"]:
            lr_of[id(p)] = (g["lr"], g["weight_decay"])
    named = dict(model.named_parameters())
    assert lr_of[id(named["head.weight"])] == (1e-3, 0.01)
    assert lr_of[id(named["head.bias"])] == (1e-3, 0.0)
    top = named["encoder.encoder.layer.5.attention.self.query.weight"]
    bottom = named["encoder.encoder.layer.0.attention.self.query.weight"]
    emb = named["encoder.embeddings.word_embeddings.weight"]
    assert lr_of[id(top)][0] == pytest.approx(1e-4 * 0.5)
    assert lr_of[id(bottom)][0] == pytest.approx(1e-4 * 0.5 ** 6)
    assert lr_of[id(emb)][0] == pytest.approx(1e-4 * 0.5 ** 7)
    assert lr_of[id(named["encoder.encoder.layer.0.attention.output.LayerNorm.weight"])][1] == 0.0


@pytest.mark.parametrize("lr, head", [(5e-5, 5e-4), (5e-4, 1e-3), (3e-3, 3e-3)])
def test_default_head_lr_is_ten_times_capped(tiny_model, lr, head):
    model, _ = tiny_model
    groups = loop.param_groups(model, loop.LoopConfig(epochs=1, batch_size=8, learning_rate=lr))
    head_weight = dict(model.named_parameters())["head.weight"]
    assert [g["lr"] for g in groups if any(p is head_weight for p in g["params"])] == [
        pytest.approx(head)]


def test_loop_config_takes_every_loop_setting_a_strategy_config_has():
    from ronghe.strategies.finetune import FinetuneConfig

    c = FinetuneConfig(epochs=4, learning_rate=2e-5, layer_lr_decay=0.8, head_learning_rate=1e-4,
                       adversarial="fgm", checkpoint_every=7, patience=5)
    cfg = loop.LoopConfig.from_config(c, patience=1)
    assert (cfg.epochs, cfg.learning_rate, cfg.layer_lr_decay, cfg.head_learning_rate) == (
        4, 2e-5, 0.8, 1e-4)
    assert (cfg.adversarial, cfg.checkpoint_every, cfg.patience) == ("fgm", 7, 1)

    class Partial:  # a config without the adversarial fields keeps the loop's defaults
        epochs, batch_size, learning_rate = 2, 8, 1e-3

    assert loop.LoopConfig.from_config(Partial()).adversarial == "none"


def test_adamw_is_fused_on_cpu(tiny_model):
    model, _ = tiny_model
    cfg = loop.LoopConfig(epochs=1, batch_size=8, learning_rate=1e-3)
    opt = loop.adamw(loop.param_groups(model, cfg), 1e-3, torch.device("cpu"))
    assert opt.defaults["fused"] is True


@pytest.mark.parametrize("options, frozen_prefixes, trainable_prefixes", [
    ({"freeze": "embeddings"}, ["embeddings."], ["encoder.layer.0.", "encoder.layer.5."]),
    ({"freeze_layers": 2}, ["embeddings.", "encoder.layer.0.", "encoder.layer.1."],
     ["encoder.layer.2.", "encoder.layer.5."]),
    ({"freeze": "encoder"}, ["embeddings.", "encoder.layer.", "pooler."], []),
])
def test_freezing_policies(options, frozen_prefixes, trainable_prefixes, sentiment_df):
    clf = TextClassifier(strategy="finetune", epochs=1, **NET, options=options)
    enc = backbones.load_encoder(backbones.resolve("minilm").path)
    from ronghe.strategies.finetune import _freeze

    _freeze(enc, clf.resolved_config())
    for name, p in enc.named_parameters():
        if any(name.startswith(f) for f in frozen_prefixes):
            assert not p.requires_grad, name
        if any(name.startswith(t) for t in trainable_prefixes):
            assert p.requires_grad, name
    if options.get("freeze") == "encoder":  # head only: the encoder must not move
        fitted = TextClassifier(strategy="finetune", epochs=1, **NET, options=options).fit(sentiment_df)
        before = enc.state_dict()["encoder.layer.3.output.dense.weight"]
        after = fitted.strategy_.model.encoder.state_dict()["encoder.layer.3.output.dense.weight"]
        assert torch.equal(before, after)
        assert fitted.metrics_["parameters"]["trainable"] == 384 * 2 + 2


def _one_epoch_weights(df, **options):
    clf = TextClassifier(strategy="finetune", epochs=1, **NET, options=options).fit(df)
    return clf.strategy_.model.head.weight.detach().clone(), clf


def test_loss_options_change_training(sentiment_df):
    skewed = sentiment_df[(sentiment_df.label == "pos") | (sentiment_df.index % 3 == 0)]
    base, _ = _one_epoch_weights(skewed)
    assert not torch.equal(base, _one_epoch_weights(skewed, label_smoothing=0.2)[0])
    assert not torch.equal(base, _one_epoch_weights(skewed, class_weight="auto")[0])
    again, _ = _one_epoch_weights(skewed)
    assert torch.equal(base, again)  # the differences above are not noise


@pytest.mark.parametrize("method", ["fgm", "pgd"])
def test_adversarial_training_adds_gradient(method, sentiment_df):
    base, _ = _one_epoch_weights(sentiment_df)
    adv, clf = _one_epoch_weights(sentiment_df, adversarial=method, adv_epsilon=0.5)
    assert not torch.equal(base, adv)
    assert clf.metrics_["valid"]["accuracy"] >= 0.5


def test_adversarial_training_with_frozen_embeddings(sentiment_df):
    _, clf = _one_epoch_weights(sentiment_df, adversarial="fgm", freeze="embeddings")
    assert clf.metrics_["history"][0]["train_loss"] > 0


def test_augmentation_is_seeded_reported_and_train_only(tiny_model, sentiment_df):
    model, tok = tiny_model
    syn = EmbeddingSynonyms(tok, model.encoder.get_input_embeddings().weight.detach().numpy())
    assert syn("good") and "good" not in syn("good")
    texts, labels = ["a truly good film", "a really bad film"], ["pos", "neg"]
    a = augment(texts, labels, ["swap", "delete", "synonym", "insert"], per_example=3, seed=1,
                synonyms=syn)
    b = augment(texts, labels, ["swap", "delete", "synonym", "insert"], per_example=3, seed=1,
                synonyms=syn)
    assert a == b and a[2]["added"] == len(a[0]) - 2 > 0
    assert a[0][:2] == texts and all(lab in ("pos", "neg") for lab in a[1])
    back = augment(texts, labels, ["back_translate"], translate=lambda xs: [x.upper() for x in xs])
    assert back[0][2:] == ["A TRULY GOOD FILM", "A REALLY BAD FILM"] and back[1][2:] == labels
    with pytest.raises(Exception, match="none ships offline"):
        augment(texts, labels, ["back_translate"])
    clf = TextClassifier(strategy="finetune", epochs=1, **NET,
                         options={"augment": ["swap", "synonym"]}).fit(sentiment_df)
    rep = clf.metrics_["augmentation"]
    assert rep["original"] == clf.data_["n_train"] and rep["added"] > 0
    assert clf.metrics_["valid"]["n"] == clf.data_["n_valid"]  # validation untouched


def test_run_dir_tracking(sentiment_df, tmp_path):
    run = tmp_path / "run"
    TextClassifier(strategy="finetune", epochs=2, **NET, run_dir=run,
                   options={"log_every": 2}).fit(sentiment_df)
    assert json.loads((run / "config.json").read_text())["epochs"] == 2
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert [r["epoch"] for r in rows if r["kind"] == "epoch"] == ["1", "2"]
    assert any(r["kind"] == "step" and float(r["train_loss"]) > 0 for r in rows)
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert (run / "checkpoint" / "state.json").exists()


class Interrupt(Callback):
    def __init__(self, at_step):
        self.at_step = at_step

    def on_step_end(self, loop, loss):
        if loop.global_step == self.at_step:
            raise KeyboardInterrupt


def test_resume_reaches_the_same_model(sentiment_df, tmp_path):
    opts = {"checkpoint_every": 3, "report_to": []}
    full = TextClassifier(strategy="finetune", epochs=2, **NET, run_dir=tmp_path / "a",
                          options=opts).fit(sentiment_df)
    clf = TextClassifier(strategy="finetune", epochs=2, **NET, run_dir=tmp_path / "b", options=opts)
    with pytest.raises(KeyboardInterrupt):  # interrupted at step 4: last checkpoint at step 3
        clf.fit(sentiment_df, callbacks=[Interrupt(4)])
    assert json.loads((tmp_path / "b/checkpoint/state.json").read_text())["position"]["global_step"] == 3
    clf.fit(sentiment_df, resume=True)
    assert clf.metrics_["history"] == [{**h, "seconds": clf.metrics_["history"][i]["seconds"]}
                                       for i, h in enumerate(full.metrics_["history"])]
    np.testing.assert_allclose(clf.predict_proba(["lovely", "dreadful"]),
                               full.predict_proba(["lovely", "dreadful"]), atol=1e-6)


def test_resume_needs_a_run_dir(sentiment_df):
    with pytest.raises(Exception, match="run directory"):
        TextClassifier(strategy="finetune").fit(sentiment_df, resume=True)


def test_killed_training_process_resumes(tmp_path):
    """Kill a real `ronghe train` with SIGKILL after its first checkpoint, resume, and compare
    with an uninterrupted run of the same seed."""
    from makers import make_sentiment

    make_sentiment(30).to_csv(tmp_path / "d.csv", index=False)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}

    def cmd(out, run):
        return [sys.executable, "-m", "ronghe.cli", "train", str(tmp_path / "d.csv"), "--strategy",
                "finetune", "--epochs", "2", "--max-length", "24", "--batch-size", "8", "--quiet",
                "--option", "checkpoint_every=5", "--report-to", "none", "--out", str(out),
                "--run-dir", str(run)]

    subprocess.run(cmd(tmp_path / "full", tmp_path / "full.run"), env=env, check=True)
    proc = subprocess.Popen(cmd(tmp_path / "k", tmp_path / "k.run"), env=env)
    state = tmp_path / "k.run" / "checkpoint" / "state.json"
    deadline = time.time() + 120
    while not state.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "training finished before it could be killed"
    assert not (tmp_path / "k").exists()  # no bundle from the killed run
    step = json.loads(state.read_text())["position"]["global_step"]
    assert 0 < step < 14
    subprocess.run(cmd(tmp_path / "k", tmp_path / "k.run") + ["--resume"], env=env, check=True)
    a, b = load(tmp_path / "full"), load(tmp_path / "k")
    assert a.metrics_["valid"] == b.metrics_["valid"]
    np.testing.assert_allclose(a.predict_proba(["fine", "awful"]), b.predict_proba(["fine", "awful"]),
                               atol=1e-6)
