"""Champion/challenger: a better challenger is promoted as the next version the server picks
up; a worse one, or one that forgets the old validation data, never is; every decision is in
the model history (SQLite and PostgreSQL); --watch handles each new file once."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from makers import make_sentiment
from ronghe import TextClassifier, data
from ronghe.errors import ConfigError
from ronghe.cli import app
from ronghe.lifecycle import history, retrain


def flipped(df, share: float, seed: int = 0):
    df = df.copy()
    flip = np.random.default_rng(seed).uniform(size=len(df)) < share
    df.loc[flip, "label"] = df.loc[flip, "label"].map({"pos": "neg", "neg": "pos"})
    return df


@pytest.fixture(scope="module")
def noisy_champion():
    """Trained on labels 40% flipped: right about two times in three."""
    return TextClassifier("classic").fit(flipped(make_sentiment(40, seed=0), 0.4))


@pytest.fixture
def served(noisy_champion, tmp_path):
    noisy_champion.save(tmp_path / "models" / "sentiment" / "v1")
    return tmp_path / "models" / "sentiment"


def test_cli_promotes_a_better_challenger_as_the_next_version(served, tmp_path):
    make_sentiment(150, seed=8).to_csv(tmp_path / "new.csv", index=False)
    make_sentiment(30, seed=9).to_csv(tmp_path / "old.csv", index=False)
    r = CliRunner().invoke(app, ["retrain", str(served), "--new", str(tmp_path / "new.csv"),
                                 "--old-valid", str(tmp_path / "old.csv"), "-q"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output.strip().splitlines()[-1])
    assert d["decision"] == "promoted" and d["challenger"] == "v2"
    assert d["holdout_n"] == 60 and d["n_train"] == 240
    assert d["challenger_accuracy"] > d["champion_accuracy"] + 0.2
    assert d["mcnemar"]["p_value"] < 0.05
    # what `ronghe serve models/sentiment` now serves
    assert retrain.current_version(served)[0] == "v2"
    store = history.open_store(served / "history.sqlite")
    (row,) = history.rows(store)
    assert row["decision"] == "promoted" and row["challenger"] == "v2"
    assert row["details"]["gain"] == pytest.approx(d["gain"])


def test_worse_or_forgetting_challengers_are_never_promoted(served, noisy_champion, tmp_path):
    new = data.from_frame(make_sentiment(150, seed=8))
    old_valid = data.from_frame(make_sentiment(30, seed=9))
    store = history.open_store(tmp_path / "h.sqlite")
    worse = TextClassifier("classic").fit(flipped(make_sentiment(60, seed=1), 1.0))
    d = retrain.retrain(served, new, old_valid=old_valid, store=store, challenger=worse)
    assert d["decision"] == "kept" and d["challenger"] is None
    assert d["challenger_accuracy"] < d["champion_accuracy"]
    assert any("no gain" in r for r in d["reasons"])
    # better on the new data, but the old validation labels say it forgot what it knew
    better = TextClassifier("classic").fit(make_sentiment(60, seed=1))
    forgets = data.from_frame(flipped(make_sentiment(30, seed=9), 1.0))
    d = retrain.retrain(served, new, old_valid=forgets, store=store, challenger=better)
    assert d["decision"] == "kept" and d["gain"] > 0.2
    assert any("forgets" in r for r in d["reasons"])
    assert sorted(p.name for p in served.iterdir() if p.is_dir()) == ["v1"]
    assert [r["decision"] for r in history.rows(store)] == ["kept", "kept"]
    # too few held-out rows: refused, not decided on noise
    with pytest.raises(Exception, match="at least 50"):
        retrain.retrain(served, data.from_frame(make_sentiment(40, seed=3)), challenger=better)


def test_watch_handles_each_file_once(served, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    make_sentiment(150, seed=8).to_csv(inbox / "batch1.csv", index=False)
    (inbox / "notes.txt").write_text("not data")
    args = ["retrain", str(served), "--watch", str(inbox), "--once", "--no-old-gate", "-q"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert [json.loads(x)["decision"] for x in first.output.strip().splitlines()] == ["promoted"]
    again = CliRunner().invoke(app, args)  # a restart: batch1 is in the history, skipped
    assert again.exit_code == 0 and again.output.strip() == ""
    assert len(history.rows(history.open_store(served / "history.sqlite"))) == 1


def test_history_on_both_databases(db_url):
    store = history.open_store(db_url)
    decision = {"decision": "kept", "champion": "v3", "challenger": None, "gain": -0.01}
    rid = history.record(store, "sentiment", decision, new_data="b.csv", new_data_sha256="ab" * 32)
    assert rid >= 1 and history.seen(store, "ab" * 32) and not history.seen(store, "cd" * 32)
    (row,) = history.rows(store, "sentiment")
    assert row["champion"] == "v3" and row["details"]["gain"] == -0.01
    store.close()


def test_adapt_domain_anchor_keeps_the_sentence_space(tiny_bert, tmp_path):
    """The embedding anchor keeps the adapted encoder's sentence embeddings closer to the
    original's than plain masked-LM training at the same settings."""
    from makers import banking_frame
    from ronghe.lifecycle.adapt import AdaptConfig, adapt

    texts = list(banking_frame(120, seed=2)["text"])
    kept = {a: adapt(texts, tmp_path / f"a{a}", tiny_bert, AdaptConfig(
        epochs=3, learning_rate=3e-3, anchor=a, head_warmup_steps=10))
        ["embedding_cosine_to_original"] for a in (0.0, 50.0)}
    assert kept[50.0] > kept[0.0] + 0.02, kept


def test_adapt_domain_resumes_a_killed_run_exactly(tiny_bert, tmp_path, monkeypatch):
    """A run killed after its second checkpoint, resumed from the run directory, ends with the
    same weights as the run that was never interrupted; metrics.csv has the steps."""
    from safetensors.torch import load_file

    from makers import banking_frame
    from ronghe.lifecycle import adapt as adapt_mod
    from ronghe.training import checkpoint

    texts = list(banking_frame(80, seed=3)["text"])
    cfg = adapt_mod.AdaptConfig(epochs=2, batch_size=8, learning_rate=1e-3, head_warmup_steps=4,
                                checkpoint_every=3)
    whole = adapt_mod.adapt(texts, tmp_path / "whole", tiny_bert, cfg, run_dir=tmp_path / "r1")
    real, saved = checkpoint.save, []

    def killed_after_two(*args, **kw):
        real(*args, **kw)
        saved.append(kw["position"]["global_step"])
        if len(saved) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint, "save", killed_after_two)
    with pytest.raises(KeyboardInterrupt):
        adapt_mod.adapt(texts, tmp_path / "again", tiny_bert, cfg, run_dir=tmp_path / "r2")
    assert not (tmp_path / "again").exists()  # nothing half-written
    monkeypatch.setattr(checkpoint, "save", real)
    again = adapt_mod.adapt(texts, tmp_path / "again", tiny_bert, cfg, run_dir=tmp_path / "r2",
                            resume=True)
    assert saved == [3, 6] and again["resumed"] and again["steps"] == whole["steps"] == 18
    a, b = (load_file(str(tmp_path / d / "model.safetensors")) for d in ("whole", "again"))
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert again["mlm_loss_after"] == pytest.approx(whole["mlm_loss_after"], abs=1e-5)
    rows = (tmp_path / "r2" / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("kind,epoch,step") and "valid_mlm_loss" in rows[0]
    assert [r.split(",")[2] for r in rows[1:]] == ["10", "18"]  # every 10 steps + the end
    with pytest.raises(ConfigError, match="no checkpoint"):
        adapt_mod.adapt(texts, tmp_path / "x", tiny_bert, cfg, run_dir=tmp_path / "none",
                        resume=True)


def test_adapt_domain_writes_a_backbone_that_trains(tiny_bert, tmp_path):
    """Masked-LM training on in-domain text lowers the held-out MLM loss, and the folder is a
    backbone a classifier trains on."""
    from ronghe import backbones
    from makers import banking_frame

    texts = tmp_path / "unlabeled.txt"
    texts.write_text("\n".join(banking_frame(120, seed=2)["text"]))
    out = tmp_path / "bank-encoder"
    r = CliRunner().invoke(app, ["adapt-domain", str(texts), "--model", tiny_bert, "--out",
                                 str(out), "--epochs", "3", "--learning-rate", "1e-3", "-q"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.output.strip().splitlines()[-1])
    assert report["mlm_loss_after"] < report["mlm_loss_before"] - 0.2
    # the tiny backbone ships no MLM head: it was trained alone first, and that already helped
    assert report["fresh_head_weights"] > 0 and report["head_warmup_steps"] > 0
    assert report["mlm_loss_after_head_warmup"] < report["mlm_loss_before"]
    assert 0 < report["embedding_cosine_to_original"] <= 1
    bb = backbones.resolve(str(out))
    assert bb.sha256 != backbones.resolve(tiny_bert).sha256
    clf = TextClassifier("frozen", str(out)).fit(make_sentiment(10, seed=0))
    assert set(clf.predict(["a fine film"])) <= {"pos", "neg"}


@pytest.mark.parametrize("current, drifted", [("banking.csv", True), ("same.csv", False)])
def test_watch_retrains_on_all_files_when_drift_is_found(served, files, tmp_path, current,
                                                         drifted):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    make_sentiment(60, seed=8).to_csv(inbox / "batch1.csv", index=False)
    make_sentiment(60, seed=9).to_csv(inbox / "batch2.csv", index=False)
    r = CliRunner().invoke(app, ["retrain", str(served), "--watch", str(inbox), "--once",
                                 "--no-old-gate", "-q", "--option", "min_holdout=20",
                                 "--drift-reference", str(files / "reference.csv"),
                                 "--drift-current",
                                 str(files / current)])
    assert r.exit_code == 0, r.output
    decisions = [json.loads(x) for x in r.output.strip().splitlines()]
    assert [d.get("trigger") for d in decisions] == [None, None] + (["drift"] if drifted else [])
    rows = history.rows(history.open_store(served / "history.sqlite"))
    assert len(rows) == len(decisions)
    if drifted:  # one challenger on both files: 240 rows, the newest 20% of them held out
        d = rows[-1]["details"]
        assert d["files"] == ["batch1.csv", "batch2.csv"] and "input" in d["drift_checks"]
        assert d["n_train"] == 192 and d["holdout_n"] == 48
