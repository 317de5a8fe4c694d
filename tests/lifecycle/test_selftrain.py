"""Self-training: labelled texts teach only a few cue words per class; unlabelled texts pair a
cue word with words the labels never showed, so only pseudo-labels can teach those; validation
items without a cue word are then right."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from ronghe.cli import app
from ronghe.lifecycle.selftrain import choose_threshold

LETTERS = np.array(list("abcdefghijklmnopqrstuvwxyz"))


def _vocab(rng, n):
    return ["".join(rng.choice(LETTERS, 7)) for _ in range(n)]


def cue_data(seed: int = 0):
    """(labelled, unlabelled, validation) frames of two classes."""
    rng = np.random.default_rng(seed)
    cues = {c: _vocab(rng, 3) for c in ("alpha", "beta")}
    hidden = {c: _vocab(rng, 12) for c in ("alpha", "beta")}
    filler = _vocab(rng, 20)

    def text(c, cue: bool, n_hidden: int):
        words = list(rng.choice(filler, 1)) + list(rng.choice(hidden[c], n_hidden))
        if cue:
            words.append(rng.choice(cues[c]))
        return " ".join(rng.permutation(words))

    def frame(n, cue, n_hidden, labelled=True):
        rows = [(text(c, cue, n_hidden), c) for c in ("alpha", "beta") for _ in range(n)]
        df = pd.DataFrame(rows, columns=["text", "label"])
        return df if labelled else df.drop(columns="label")

    valid = pd.concat([frame(15, True, 0), frame(15, False, 2)], ignore_index=True)
    return frame(20, True, 0), frame(120, True, 2, labelled=False), valid


def test_threshold_is_the_lowest_confidence_with_the_precision_on_enough_items():
    conf = np.array([0.99, 0.95, 0.9, 0.8, 0.7, 0.6])
    right = np.array([1, 1, 1, 0, 1, 0], bool)
    assert choose_threshold(conf, right, 0.8, 2) == 0.7      # 4 of 5 right down to 0.7
    assert choose_threshold(conf, right, 1.0, 2) == 0.9
    assert choose_threshold(conf, right, 1.0, 4) is None      # not enough items that precise


def test_train_unlabeled_learns_words_only_pseudo_labels_show(tmp_path):
    labelled, unlabelled, valid = cue_data()
    labelled.to_csv(tmp_path / "train.csv", index=False)
    valid.to_csv(tmp_path / "valid.csv", index=False)
    unlabelled.to_csv(tmp_path / "unlabelled.csv", index=False)
    runner = CliRunner()
    base = ["train", str(tmp_path / "train.csv"), "--valid", str(tmp_path / "valid.csv"),
            "--strategy", "classic", "--option", "char_ngrams=null", "-q"]
    r = runner.invoke(app, base + ["--out", str(tmp_path / "plain")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, base + ["--out", str(tmp_path / "self"), "--unlabeled",
                                   str(tmp_path / "unlabelled.csv"),
                                   "--self-train-option", "min_precision=0.95"])
    assert r.exit_code == 0, r.output
    plain = json.loads((tmp_path / "plain" / "ronghe.json").read_text())["metrics"]
    st = json.loads((tmp_path / "self" / "ronghe.json").read_text())["metrics"]
    info = st["self_training"]
    assert info["rounds"][0]["valid_accuracy"] == round(plain["valid"]["accuracy"], 5)
    assert plain["valid"]["accuracy"] <= 0.85                # the cue-less half is guesswork
    first = info["rounds"][1]
    assert first["kept"] and first["pseudo_labeled"] >= 150  # most cue-word texts, confident
    assert st["valid"]["accuracy"] >= 0.95 > plain["valid"]["accuracy"]
    assert info["final_valid_accuracy"] == round(st["valid"]["accuracy"], 5)
    # the last round either did not help (then not kept) or rounds ran out
    assert not info["rounds"][-1]["kept"] or len(info["rounds"]) == 4


def test_unlabeled_needs_text_classification_and_a_known_option(tmp_path):
    labelled, unlabelled, _ = cue_data()
    labelled.to_csv(tmp_path / "train.csv", index=False)
    (tmp_path / "u.txt").write_text("\n".join(unlabelled["text"]))
    r = CliRunner().invoke(app, ["train", str(tmp_path / "train.csv"), "--strategy", "classic",
                                 "--out", str(tmp_path / "m"), "--unlabeled",
                                 str(tmp_path / "u.txt"), "--self-train-option", "round=2"])
    assert r.exit_code == 2 and "round" in r.output
    assert not (tmp_path / "m").exists()
