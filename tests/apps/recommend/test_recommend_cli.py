"""``ronghe recommend train | evaluate``: files in, a bundle and a report out; mistakes exit 2."""

from __future__ import annotations

import json

from rec_material import OPTIONS
from typer.testing import CliRunner

from ronghe.cli import app


def test_train_then_evaluate_from_files(shop, tmp_path):
    run = CliRunner().invoke
    opts = [x for k, v in OPTIONS.items() for x in ("--option", f"{k}={v}")]
    out = tmp_path / "rec"
    r = run(app, ["recommend", "train", "--interactions", str(shop["paths"]["train"]), "--items",
                  str(shop["paths"]["items"]), "--text-col", "title", "--out", str(out),
                  *opts])
    assert r.exit_code == 0, r.output
    assert (out / "ranker.txt").exists()
    said = " ".join(r.output.split())
    assert "places kept for items without interactions" in said and "new_places=auto" in said
    r = run(app, ["recommend", "evaluate", str(out), str(shop["paths"]["test"]), "--out",
                  str(tmp_path / "eval.json"), "-q"])
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "eval.json").read_text())
    assert report["methods"]["fused"]["all"]["n"] == len(shop["test"])
    assert (tmp_path / "eval.md").read_text().startswith("**all**")


def test_mistakes_exit_2_with_a_message(shop, tmp_path):
    run = CliRunner().invoke
    r = run(app, ["recommend", "train", "--interactions", str(tmp_path / "missing.csv"),
                  "--items", str(shop["paths"]["items"]), "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "interactions file not found" in r.output
    r = run(app, ["recommend", "train", "--interactions", str(shop["paths"]["train"]),
                  "--items", str(shop["paths"]["items"]), "--out", str(tmp_path / "x"),
                  "--option", "factors=-1"])
    assert r.exit_code == 2 and "factors" in r.output
    assert not (tmp_path / "x").exists()
