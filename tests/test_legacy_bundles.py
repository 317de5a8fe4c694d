"""Bundles written by an earlier ronghe (``tests/data/bundles/legacy``, made by
``make_legacy.py`` with main at 77ab97c) load with today's code and predict what they predicted
then: the bundle format is a promise to users, not an implementation detail."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import ronghe

HERE = Path(__file__).parent / "data" / "bundles"
EXPECTED = json.loads((HERE / "expected.json").read_text())


@pytest.mark.parametrize("name", sorted(EXPECTED["bundles"]))
def test_legacy_bundle_loads_and_predicts_as_before(name, tmp_path):
    want = EXPECTED["bundles"][name]
    clf = ronghe.load(HERE / "legacy" / name)
    assert clf.manifest_.task == want["task"]
    if want["task"] == "text-classification":
        assert list(map(str, clf.predict(EXPECTED["texts"]))) == want["labels"]
        np.testing.assert_allclose(clf.predict_proba(EXPECTED["texts"]), want["proba"], atol=2e-5)
    else:
        got = clf.predict(EXPECTED["ner_texts"])
        strip = [[{k: v for k, v in e.items() if k != "score"} for e in s] for s in got]
        assert strip == [[{k: v for k, v in e.items() if k != "score"} for e in s]
                         for s in want["entities"]]
        np.testing.assert_allclose([e["score"] for s in got for e in s],
                                   [e["score"] for s in want["entities"] for e in s], atol=1e-4)
    # saved again by today's code, it still loads and predicts the same
    again = ronghe.load(clf.save(tmp_path / name))
    inputs = EXPECTED["texts"] if want["task"] == "text-classification" else EXPECTED["ner_texts"]
    assert again.predict(inputs).__repr__() == clf.predict(inputs).__repr__()


def test_legacy_bundles_are_still_verified(tmp_path):
    """Loading an old bundle still checks every file's checksum."""
    copy = shutil.copytree(HERE / "legacy" / "text-classic", tmp_path / "b")
    arrays = copy / "arrays.safetensors"
    raw = bytearray(arrays.read_bytes())
    raw[-1] ^= 1
    arrays.write_bytes(bytes(raw))
    with pytest.raises(ronghe.errors.BundleError, match="sha256"):
        ronghe.load(copy)
