"""What a hostile or careless edit can do to a bundle: refused, with exit code 2 and a message
that names the file and the field - never an internal error, never silently wrong predictions."""

from __future__ import annotations

import json
import os
import shutil
import stat
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ronghe import TextClassifier, load
from ronghe.bundle import seal, sha256
from ronghe.cli import app
from ronghe.errors import BundleError


@pytest.fixture(scope="module")
def classic(tmp_path_factory):
    from makers import make_sentiment

    path = TextClassifier(strategy="classic").fit(make_sentiment(12)).save(
        tmp_path_factory.mktemp("b") / "classic")
    return path


@pytest.fixture
def copy(classic, tmp_path):
    return Path(shutil.copytree(classic, tmp_path / "copy"))


def manifest(path: Path) -> dict:
    return json.loads((path / "ronghe.json").read_text())


def rewrite(path: Path, m: dict, reseal: bool = True) -> None:
    """Write a changed manifest; ``reseal`` as a buggy or hostile tool that knows the scheme."""
    if reseal:
        m["sealed_sha256"] = seal(m)
    (path / "ronghe.json").write_text(json.dumps(m))


def refused(path: Path, *words: str) -> None:
    with pytest.raises(BundleError) as e:
        load(path)
    for w in words:
        assert w in str(e.value), str(e.value)
    r = CliRunner().invoke(app, ["predict", str(path), "--text", "good"])
    assert r.exit_code == 2, r.output
    assert "internal error" not in r.output


def test_reversed_labels_are_refused(copy):
    m = manifest(copy)
    m["labels"] = m["labels"][::-1]
    rewrite(copy, m, reseal=False)
    refused(copy, "ronghe.json was modified after saving", "labels")


@pytest.mark.parametrize("field", ["strategy", "config", "state"])
def test_other_meaning_bearing_fields_are_sealed(copy, field):
    m = manifest(copy)
    m[field] = {"strategy": "stack", "config": {**m["config"], "seed": 99},
                "state": {**m["state"], "extra": 1}}[field]
    rewrite(copy, m, reseal=False)
    refused(copy, "modified after saving")


def test_labels_shorter_than_the_weights(copy):
    m = manifest(copy)
    m["labels"] = m["labels"][:1]
    rewrite(copy, m)
    refused(copy, "labels")


def test_emptied_state(copy):
    m = manifest(copy)
    m["state"] = {}
    rewrite(copy, m)
    refused(copy, "cannot be rebuilt", "missing entry")


def test_backbone_entry_without_path(tmp_path):
    frozen = Path(__file__).parent / "data" / "bundles" / "legacy" / "text-frozen"
    path = Path(shutil.copytree(frozen, tmp_path / "f"))
    m = manifest(path)
    del m["backbone"]["path"]
    rewrite(path, m)
    refused(path, "ronghe.json", "backbone.path")


def test_a_foreign_file_under_the_safetensors_name(copy):
    (copy / "arrays.safetensors").write_bytes(b"not safetensors at all" * 10)
    m = manifest(copy)
    m["files"]["arrays.safetensors"] = sha256(copy / "arrays.safetensors")
    rewrite(copy, m)
    refused(copy, "arrays.safetensors is not a readable safetensors file")


def test_listed_paths_outside_the_bundle_are_never_read(copy, monkeypatch):
    import ronghe.bundle as bundle_mod

    m = manifest(copy)
    m["files"]["/etc/hostname"] = "0" * 64
    rewrite(copy, m)
    read = []
    real = bundle_mod.sha256
    monkeypatch.setattr(bundle_mod, "sha256", lambda p: read.append(str(p)) or real(p))
    refused(copy, "/etc/hostname", "outside the bundle")
    assert not [p for p in read if "hostname" in p]  # no oracle: the file was not hashed
    m = manifest(copy)
    del m["files"]["/etc/hostname"]
    m["files"]["../escape"] = "0" * 64
    rewrite(copy, m)
    refused(copy, "outside the bundle")


def test_symlinks_are_refused(copy, tmp_path):
    outside = tmp_path / "outside.safetensors"
    shutil.copy(copy / "arrays.safetensors", outside)
    (copy / "arrays.safetensors").unlink()
    (copy / "arrays.safetensors").symlink_to(outside)  # same bytes, so the sha256 matches
    refused(copy, "symbolic link", "arrays.safetensors")


def test_an_unlisted_symlinked_folder_is_refused(copy, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "x.txt").write_text("x")
    (copy / "members").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    refused(copy, "symbolic link", "members")


def test_every_file_has_the_same_mode(tmp_path):
    from makers import make_sentiment

    old = os.umask(0o022)
    try:
        path = TextClassifier(strategy="classic").fit(make_sentiment(8)).save(tmp_path / "m")
    finally:
        os.umask(old)
    modes = {p.relative_to(path).as_posix(): stat.S_IMODE(p.stat().st_mode)
             for p in path.rglob("*")}
    assert modes["arrays.safetensors"] == 0o644  # safetensors itself writes 0600
    assert set(v for k, v in modes.items() if (path / k).is_file()) == {0o644}
    assert stat.S_IMODE(path.stat().st_mode) == 0o755


def test_stale_temporary_folders_are_cleaned_on_the_next_save(tmp_path, caplog):
    from makers import make_sentiment

    clf = TextClassifier(strategy="classic").fit(make_sentiment(8))
    dead = tmp_path / ".m.tmp-99999999-0123abcd"  # its writer is gone
    old_style = tmp_path / ".m.old-89abcdef"  # no pid (older versions), two hours old
    alive = tmp_path / f".m.tmp-{os.getppid()}-fedcba98"  # a save in progress elsewhere
    for p in (dead, old_style, alive):
        p.mkdir()
        (p / "ronghe.json").write_text("{}")
    two_hours_ago = time.time() - 7200
    os.utime(old_style, (two_hours_ago, two_hours_ago))
    with caplog.at_level("INFO", logger="ronghe"):
        clf.save(tmp_path / "m")
    assert not dead.exists() and not old_style.exists() and alive.exists()
    assert "interrupted saves" in caplog.text


# -- careless data ---------------------------------------------------------------------------------

def test_duplicate_column_names_are_an_error(tmp_path):
    from ronghe import data
    from ronghe.errors import DataError

    f = tmp_path / "d.csv"
    f.write_text("text,label,text\nhello,pos,other\nbye,neg,x\n")
    with pytest.raises(DataError, match="'text' in columns 1, 3"):
        data.load(f)
    r = CliRunner().invoke(app, ["train", str(f), "--strategy", "classic", "--out",
                                 str(tmp_path / "m")])
    assert r.exit_code == 2 and "more than once" in r.output


def test_a_very_long_text_is_warned_about(tmp_path, caplog):
    import pandas as pd

    from ronghe import data

    df = pd.DataFrame({"text": ["short", "x" * 150_000, "fine"], "label": ["a", "b", "a"]})
    with caplog.at_level("WARNING", logger="ronghe"):
        ds = data.from_frame(df, source="d.csv")
    assert any("longer than 100,000 characters" in n and "row 2" in n for n in ds.notes)
    assert "150,000" in caplog.text


def test_manifest_notes_are_not_repeated(classic):
    notes = manifest(classic)["data"]["notes"]
    assert notes and len(notes) == len(set(notes))
