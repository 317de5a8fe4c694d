"""The bundle format: manifest contents, atomic writes, verification, no code execution."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from ronghe import TextClassifier, bundle, load
from ronghe.errors import BundleError


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    from makers import make_sentiment

    clf = TextClassifier(strategy="classic").fit(make_sentiment(16))
    path = clf.save(tmp_path_factory.mktemp("b") / "model")
    return clf, path


def copy_bundle(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_manifest_has_everything_needed(saved):
    clf, path = saved
    m = json.loads((path / "ronghe.json").read_text())
    assert m["format_version"] == bundle.FORMAT_VERSION
    assert m["task"] == "text-classification" and m["strategy"] == "classic"
    assert m["labels"] == ["neg", "pos"]
    assert m["config"]["C_grid"] == clf.config_.C_grid
    assert len(m["data"]["fingerprint"]) == 64 and m["data"]["n_train"] + m["data"]["n_valid"] == 32
    assert {"python", "scikit-learn", "numpy"} <= set(m["versions"])
    assert "accuracy" in m["metrics"]["valid"]
    on_disk = {p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()}
    assert set(m["files"]) == on_disk - {"ronghe.json"}
    assert all(len(v) == 64 for v in m["files"].values())


def test_frozen_bundle_references_backbone_by_sha(tmp_path):
    from makers import make_sentiment

    from ronghe import backbones

    clf = TextClassifier(strategy="frozen").fit(make_sentiment(8))
    path = clf.save(tmp_path / "f")
    m = json.loads((path / "ronghe.json").read_text())
    assert m["backbone"]["ref"] == "minilm"
    assert m["backbone"]["sha256"] == backbones.resolve("minilm").sha256
    # only the classifier is stored, not the 90 MB backbone
    assert sum(f.stat().st_size for f in path.rglob("*")) < 200_000
    m["backbone"]["sha256"] = "0" * 64
    (path / "ronghe.json").write_text(json.dumps(m))
    with pytest.raises(Exception, match="modified after saving"):  # an edited manifest
        load(path)
    from ronghe.bundle import seal

    m["sealed_sha256"] = seal(m)  # as if trained on other weights: sealed, but not these weights
    (path / "ronghe.json").write_text(json.dumps(m))
    with pytest.raises(Exception, match="sha256"):
        load(path)


def test_no_pickle_anywhere_in_a_bundle(saved):
    _, path = saved
    for f in path.rglob("*"):
        if f.is_file():
            head = f.read_bytes()[:2]
            assert head != b"\x80\x04" and head != b"\x80\x05", f"{f} looks like a pickle"
            assert f.suffix in {".json", ".safetensors", ".txt", ".model"}, f


def test_tampered_weights_are_refused(saved, tmp_path):
    _, path = saved
    p = copy_bundle(path, tmp_path / "t")
    target = p / "arrays.safetensors"
    raw = bytearray(target.read_bytes())
    raw[-1] ^= 0xFF
    target.write_bytes(bytes(raw))
    with pytest.raises(BundleError, match="sha256"):
        load(p)


def test_missing_file_and_wrong_version(saved, tmp_path):
    _, path = saved
    p = copy_bundle(path, tmp_path / "m")
    (p / "vocab_word.json").unlink()
    with pytest.raises(BundleError, match="vocab_word.json is missing"):
        load(p)
    p = copy_bundle(path, tmp_path / "v")
    m = json.loads((p / "ronghe.json").read_text())
    m["format_version"] = 99
    (p / "ronghe.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="format version 99"):
        load(p)
    with pytest.raises(BundleError, match="ronghe.json is missing"):
        load(tmp_path)
    with pytest.raises(BundleError, match="not found"):
        load(tmp_path / "nope")


def test_interrupted_save_leaves_old_bundle_and_no_temp(saved, tmp_path, monkeypatch):
    clf, path = saved
    target = clf.save(tmp_path / "keep")
    before = {p.name: p.read_bytes() for p in target.iterdir() if p.is_file()}

    real = bundle._write_tree

    def crash(root, header, state):
        real(root, header, state)  # everything written ...
        raise KeyboardInterrupt  # ... then interrupted before the rename

    monkeypatch.setattr(bundle, "_write_tree", crash)
    with pytest.raises(KeyboardInterrupt):
        clf.save(target)
    assert sorted(os.listdir(tmp_path)) == ["keep"]
    assert {p.name: p.read_bytes() for p in target.iterdir() if p.is_file()} == before
    monkeypatch.undo()
    assert (load(target).predict_proba(["fine"]) == clf.predict_proba(["fine"])).all()


def test_refuses_to_overwrite_a_foreign_folder(saved, tmp_path):
    clf, _ = saved
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("precious")
    with pytest.raises(BundleError, match="not a ronghe bundle"):
        clf.save(foreign)
    assert (foreign / "notes.txt").read_text() == "precious"


def test_finetune_bundle_is_self_contained(tmp_path, monkeypatch):
    from makers import make_sentiment

    from ronghe import backbones

    clf = TextClassifier(strategy="finetune", epochs=1, max_length=24).fit(make_sentiment(8))
    path = clf.save(tmp_path / "ft")
    assert (path / "model.safetensors").exists() and (path / "tokenizer" / "tokenizer.json").exists()
    expected = clf.predict_proba(["great", "awful"])

    def no_backbone(ref=None):
        raise AssertionError("finetune bundles must not need the original backbone")

    monkeypatch.setattr(backbones, "resolve", no_backbone)
    np.testing.assert_array_equal(load(path).predict_proba(["great", "awful"]), expected)
