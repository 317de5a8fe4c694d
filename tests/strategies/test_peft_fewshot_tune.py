"""Parameter-efficient bundles and merging, few-shot pair sampling, hyper-parameter search."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from ronghe import TextClassifier, load
from ronghe.cli import app
from ronghe.errors import ConfigError
from ronghe.strategies.contrastive import pair_count, sample_pairs

PEFT = {"epochs": 3, "batch_size": 8, "max_length": 32}


@pytest.fixture(scope="module")
def lora_bundle(tmp_path_factory):
    from makers import make_sentiment

    clf = TextClassifier(strategy="lora", **PEFT).fit(make_sentiment(16))
    return clf, clf.save(tmp_path_factory.mktemp("p") / "lora")


def test_peft_bundle_is_small_and_references_base(lora_bundle):
    clf, path = lora_bundle
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    tok = sum(f.stat().st_size for f in (path / "tokenizer").rglob("*"))
    assert size - tok < 2_000_000, f"adapter bundle {size - tok} bytes without tokenizer"
    m = json.loads((path / "ronghe.json").read_text())
    assert m["backbone"]["ref"] == "minilm" and len(m["backbone"]["sha256"]) == 64
    assert (path / "adapter" / "adapter_model.safetensors").exists()
    assert not (path / "model" / "config.json").exists()
    p = clf.metrics_["parameters"]
    assert p["trainable"] < 0.05 * p["total"]


def test_lora_is_merged_for_prediction(lora_bundle):
    clf, path = lora_bundle
    loaded = load(path)
    enc = loaded.strategy_.model.encoder
    assert type(enc).__name__ == "BertModel"  # plain weights: no adapter layers at prediction
    assert not any("lora" in n for n, _ in enc.named_parameters())


def test_export_merge_gives_a_plain_finetune_bundle(lora_bundle, tmp_path):
    clf, path = lora_bundle
    out = tmp_path / "merged"
    result = CliRunner().invoke(app, ["export", str(path), "--merge", "--out", str(out)])
    assert result.exit_code == 0, result.output
    merged = load(out)
    assert merged.strategy == "finetune" and (out / "model.safetensors").exists()
    texts = ["a lovely film", "dull and slow", "ok"]
    np.testing.assert_allclose(merged.predict_proba(texts), clf.predict_proba(texts), atol=1e-5)


def test_prefix_cannot_be_merged(tmp_path):
    from makers import make_sentiment

    clf = TextClassifier(strategy="prefix", epochs=1, batch_size=8, max_length=24).fit(make_sentiment(8))
    with pytest.raises(Exception, match="cannot be merged"):
        clf.merged()


def test_pair_sampling_streams_balanced_pairs():
    labels = np.repeat(np.arange(4), 50)
    pairs = list(sample_pairs(labels, 1000, np.random.default_rng(0)))
    assert len(pairs) == 1000
    pos = [(i, j) for i, j, t in pairs if t == 1.0]
    neg = [(i, j) for i, j, t in pairs if t == 0.0]
    assert len(pos) == len(neg) == 500
    assert all(labels[i] == labels[j] and i != j for i, j in pos)
    assert all(labels[i] != labels[j] for i, j in neg)
    again = list(sample_pairs(labels, 1000, np.random.default_rng(0)))
    assert again == pairs


def test_pair_count_follows_the_distinct_pairs_unless_iterations_are_given():
    two_by_eight = np.repeat([0, 1], 8)  # same-class pairs 2 * 28 = 56, different 64
    assert pair_count(two_by_eight, None, 20_000) == 128
    assert pair_count(two_by_eight, 20, 20_000) == 640  # SetFit 0.x: 2 per example per iteration
    many = np.repeat(np.arange(150), 8)  # 150 classes: ~720k different-class pairs
    assert pair_count(many, None, 20_000) == 20_000
    assert pair_count(np.array([0, 1]), None, 20_000) == 2  # one example per class


def test_pair_sampling_memory_does_not_grow_with_pairs():
    labels = np.repeat(np.arange(10), 5000)  # 50k examples: 2.5e9 possible pairs

    def peak(n_pairs):
        tracemalloc.start()
        for _ in sample_pairs(labels, n_pairs, np.random.default_rng(0)):
            pass
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    small, large = peak(1_000), peak(200_000)
    assert large < 1.5 * small + 100_000, (small, large)


def test_contrastive_beats_chance_with_few_examples():
    from makers import make_sentiment

    train, test = make_sentiment(8, 0), make_sentiment(8, 5)
    clf = TextClassifier(strategy="contrastive", max_length=32,
                         options={"num_iterations": 5, "min_valid": 0}).fit(train, test)
    acc = (clf.predict(test.text.tolist()) == test.label.to_numpy()).mean()
    assert acc >= 0.75
    assert "validation_merged" not in clf.metrics_  # min_valid 0: the test set stays unseen
    assert [h["C"] for h in clf.metrics_["history"]] == [0.1, 1.0, 10.0, 100.0]


def test_contrastive_trains_on_a_validation_set_too_small_to_choose_on(monkeypatch):
    from makers import make_sentiment

    from ronghe.strategies import contrastive

    seen = []
    real = contrastive.Contrastive._train_encoder
    monkeypatch.setattr(contrastive.Contrastive, "_train_encoder",
                        lambda self, ids, y: (seen.append(len(ids)), real(self, ids, y)))
    train, valid = make_sentiment(8, 0), make_sentiment(3, 5)  # 16 and 6 examples
    clf = TextClassifier(strategy="contrastive", max_length=32,
                         options={"num_iterations": 2}).fit(train, valid)
    assert seen == [22]  # the encoder trained on both
    assert clf.strategy_.head.C == 1.0 and "6 validation examples" in clf.metrics_[
        "validation_merged"] and "seen examples" in clf.metrics_["validation_merged"]
    big = make_sentiment(12, 5)  # 24 validation examples: held out, C chosen on them
    seen.clear()
    clf = TextClassifier(strategy="contrastive", max_length=32,
                         options={"num_iterations": 2}).fit(train, big)
    assert seen == [16] and "validation_merged" not in clf.metrics_


def test_tune_runs_resumes_and_best_config_trains(tmp_path):
    from makers import make_sentiment

    make_sentiment(24).to_csv(tmp_path / "d.csv", index=False)
    runner = CliRunner()
    args = ["tune", str(tmp_path / "d.csv"), "--strategy", "classic", "--trials", "3",
            "--study-dir", str(tmp_path / "study"), "--quiet"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    best = yaml.safe_load((tmp_path / "study" / "best.yaml").read_text())
    assert best["strategy"] == "classic" and len(best["C_grid"]) == 1
    assert (tmp_path / "study" / "study.db").exists()
    r = runner.invoke(app, args)  # resumes the same study: 6 trials in all
    assert r.exit_code == 0, r.output
    import optuna

    study = optuna.load_study(study_name="ronghe-classic",
                              storage=f"sqlite:///{tmp_path / 'study' / 'study.db'}")
    assert len(study.trials) == 6
    r = runner.invoke(app, ["train", "--config", str(tmp_path / "study" / "best.yaml"), "--out",
                            str(tmp_path / "best-model"), "--quiet"])
    assert r.exit_code == 0, r.output
    cfg = json.loads((tmp_path / "best-model" / "ronghe.json").read_text())["config"]
    assert cfg["C_grid"] == best["C_grid"]


def test_tune_prunes_network_trials(tmp_path):
    import optuna

    from makers import make_sentiment
    from ronghe.tune import tune
    from ronghe import data

    ds = data.from_frame(make_sentiment(16))
    study = tune(ds, strategy="finetune", study_dir=tmp_path, trials=5,
                 base={"epochs": 3, "max_length": 16, "batch_size": 16, "report_to": []})
    states = [t.state for t in study.trials]
    assert len(states) == 5 and optuna.trial.TrialState.COMPLETE in states
    for t in study.trials:  # every trial reported per-epoch values the pruner could act on
        assert t.intermediate_values


def test_adalora_with_too_few_steps_is_refused_clearly(tiny_bert):
    """One optimizer step leaves AdaLoRA no steps to measure importance before pruning ranks
    (PEFT fails with a KeyError): ronghe says what to change instead."""
    from makers import make_sentiment

    clf = TextClassifier(strategy="adalora", model=tiny_bert, epochs=1, batch_size=64)
    with pytest.raises(ConfigError, match="adalora .* at least 2 optimizer steps"):
        clf.fit(make_sentiment(16, 0), make_sentiment(6, 1))
