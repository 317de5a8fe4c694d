"""Model references: aliases, local folders, hub ids offline, safetensors only."""

from __future__ import annotations

import shutil

import pytest

from ronghe import backbones
from ronghe.errors import BackboneError


def test_alias_resolves_to_packaged_folder():
    bb = backbones.resolve("minilm")
    assert bb.source == "alias" and (bb.path / "config.json").exists()
    assert len(bb.sha256) == 64 and bb.sha256 == backbones.weights_sha256(bb.path)


def test_local_folder_and_sha_changes_with_weights(tmp_path):
    src = backbones.resolve("minilm").path
    dst = tmp_path / "copy"
    shutil.copytree(src, dst)
    bb = backbones.resolve(str(dst))
    assert bb.source == "local" and bb.sha256 == backbones.resolve("minilm").sha256
    with open(dst / "model.safetensors", "ab") as fh:
        fh.write(b"\0")
    assert backbones.resolve(str(dst)).sha256 != bb.sha256


def test_pickle_only_folder_is_refused(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x04")
    with pytest.raises(BackboneError, match="pickle"):
        backbones.resolve(str(tmp_path))


def test_folder_without_config(tmp_path):
    with pytest.raises(BackboneError, match="no config.json"):
        backbones.resolve(str(tmp_path))


def test_hub_id_offline_says_so_and_lists_local_options(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BackboneError) as e:
        backbones.resolve("someone/some-model-that-is-not-cached")
    msg = str(e.value)
    assert "Hugging Face Hub" in msg and "minilm (installed)" in msg


def test_models_listing():
    rows = {m["name"]: m for m in backbones.list_models()}
    m = rows["minilm"]
    assert m["installed"] and m["license"] == "Apache-2.0" and 50 < m["size_mb"] < 200
