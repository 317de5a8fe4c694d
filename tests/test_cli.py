"""End-to-end tests of the ``ronghe`` command line (train, predict, evaluate, models).

Everything runs offline on tiny data written to ``tmp_path``. Most tests use the fast
``classic`` strategy; ``frozen`` and ``finetune`` run once each on the packaged MiniLM.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import ronghe.bundle
from ronghe import log as ronghe_log
from ronghe.cli import app

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# A wide virtual terminal, so rich does not wrap messages in the middle of a path.
ENV = {"HF_HUB_OFFLINE": "1", "COLUMNS": "400", "TOKENIZERS_PARALLELISM": "false",
       "RONGHE_DEBUG": None, "RONGHE_PROGRESS": None}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

ADJ = {"pos": ["great", "wonderful", "brilliant", "superb", "lovely", "excellent"],
       "neg": ["terrible", "awful", "boring", "dreadful", "poor", "horrible"],
       "neutral": ["long", "recent", "french", "silent", "new", "old"]}
NOUNS = ["movie", "acting", "story"]
LABELS = sorted(ADJ)


def sentiment_rows() -> list[tuple[str, str]]:
    """54 distinct short sentences, 18 per label, interleaved."""
    rows = []
    for adj_idx in range(6):
        for noun in NOUNS:
            for label in LABELS:
                rows.append((f"the {noun} was {ADJ[label][adj_idx]}", label))
    return rows


def write_csv(path: Path, rows, header=("text", "label"), delimiter=",") -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter=delimiter)
        w.writerow(header)
        w.writerows(rows)
    return path


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in rows),
                    encoding="utf-8")
    return path


def norm(s: str) -> str:
    """Collapse whitespace (rich may wrap long log lines)."""
    return " ".join(s.split())


def _restore_logging():
    """The CLI configures the global 'ronghe' logger (rich handler, no propagation, level);
    undo that so later tests (e.g. caplog-based ones in other files) see normal logging."""
    logger = logging.getLogger("ronghe")
    logger.handlers.clear()
    logger.setLevel(logging.NOTSET)
    logger.propagate = True
    ronghe_log.set_quiet(False)


def invoke(*args, **kw):
    """Run the app in-process; returns the click Result (stdout and stderr kept apart)."""
    runner = CliRunner()
    try:
        return runner.invoke(app, [str(a) for a in args], env=ENV, **kw)
    finally:
        _restore_logging()


def assert_user_error(result, *words):
    """Exit code 2, a one-line 'error:' message with ``words`` in it, and no traceback."""
    out = norm(result.output)
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "error:" in out
    assert "internal error" not in out
    assert "Traceback" not in result.output
    for w in words:
        assert norm(w) in out, (w, out)
    return out


def manifest(bundle: Path) -> dict:
    return json.loads((bundle / "ronghe.json").read_text())


def predictions(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def listing(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("data")
    write_csv(d / "train.csv", sentiment_rows())
    return d


@pytest.fixture(scope="module")
def train_csv(data_dir) -> Path:
    return data_dir / "train.csv"


@pytest.fixture(scope="module")
def classic_bundle(tmp_path_factory, train_csv) -> Path:
    """One classic bundle shared by read-only tests (copy it before modifying it)."""
    out = tmp_path_factory.mktemp("bundles") / "classic"
    result = invoke("train", train_csv, "--out", out, "--strategy", "classic")
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture
def bundle_copy(classic_bundle, tmp_path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(classic_bundle, dst)
    return dst


@pytest.fixture(autouse=True)
def _clean_logging():
    yield
    _restore_logging()


# --------------------------------------------------------------------------- train


def test_train_classic_writes_complete_manifest(classic_bundle, train_csv):
    m = manifest(classic_bundle)
    assert m["format_version"] == ronghe.bundle.FORMAT_VERSION
    assert m["task"] == "text-classification"
    assert m["strategy"] == "classic"
    assert m["labels"] == LABELS
    assert m["backbone"] is None
    # resolved config: defaults of the classic strategy
    assert m["config"]["seed"] == 0 and m["config"]["valid_fraction"] == 0.1
    assert m["config"]["C_grid"] == [0.5, 2.0, 8.0, 32.0]
    # metrics on the held-out split
    valid = m["metrics"]["valid"]
    assert set(valid) >= {"accuracy", "macro_f1", "weighted_f1", "n"}
    assert 0.0 <= valid["accuracy"] <= 1.0
    assert [h["C"] for h in m["metrics"]["history"]] == m["config"]["C_grid"]
    # data provenance
    d = m["data"]
    assert len(d["fingerprint"]) == 64 and int(d["fingerprint"], 16) >= 0
    assert d["fingerprint"] != d["valid_fingerprint"]
    assert d["n_train"] + d["n_valid"] == len(sentiment_rows()) and d["n_valid"] >= len(LABELS)
    assert d["source"] == str(train_csv)
    # library versions
    assert m["versions"]["ronghe"] and m["versions"]["python"] and m["versions"]["scikit-learn"]
    # every other file is listed with its real sha256, and nothing is missing from the list
    on_disk = {p.relative_to(classic_bundle).as_posix() for p in classic_bundle.rglob("*")
               if p.is_file() and p.name != "ronghe.json"}
    assert set(m["files"]) == on_disk
    assert {"arrays.safetensors", "vocab_word.json", "vocab_char.json"} <= on_disk
    for rel, digest in m["files"].items():
        assert hashlib.sha256((classic_bundle / rel).read_bytes()).hexdigest() == digest


def test_train_is_reproducible_and_info_output_shown(tmp_path, train_csv, classic_bundle):
    result = invoke("train", train_csv, "--out", tmp_path / "again", "--strategy", "classic")
    assert result.exit_code == 0, result.output
    err = norm(result.stderr)
    assert "training classic on" in err and "split 10%" in err
    assert "saved" in err and "valid accuracy" in err
    a, b = manifest(classic_bundle), manifest(tmp_path / "again")
    assert a["data"]["fingerprint"] == b["data"]["fingerprint"]
    assert a["files"] == b["files"]  # same data, same seed: identical arrays and vocabularies


def test_quiet_suppresses_info_but_keeps_warnings(tmp_path):
    rows = sentiment_rows()
    rows[4] = ("   ", rows[4][1])
    data = write_csv(tmp_path / "t.csv", rows)
    result = invoke("train", data, "--out", tmp_path / "b", "--strategy", "classic", "--quiet")
    assert result.exit_code == 0, result.output
    err = norm(result.stderr)
    assert "INFO" not in err and "training classic on" not in err and "split 10%" not in err
    assert "1 empty or whitespace-only text" in err  # warnings still shown
    assert result.stdout == ""
    assert (tmp_path / "b" / "ronghe.json").exists()


def test_config_yaml_supplies_options_and_flags_override(tmp_path, train_csv):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"data: {train_csv}\nout: {tmp_path / 'from-file'}\nstrategy: classic\n"
                   f"C_grid: [1.0, 4.0]\nseed: 3\nvalid-fraction: 0.2\n")
    result = invoke("train", "--config", cfg, "--seed", "5")
    assert result.exit_code == 0, result.output
    m = manifest(tmp_path / "from-file")
    assert m["strategy"] == "classic"
    assert m["config"]["C_grid"] == [1.0, 4.0]
    assert m["config"]["valid_fraction"] == 0.2  # dashed key in the file works too
    assert m["config"]["seed"] == 5  # the flag beats the file


def test_config_toml_and_cli_out_overrides_file(tmp_path, train_csv):
    cfg = tmp_path / "run.toml"
    cfg.write_text(f'data = "{train_csv}"\nout = "{tmp_path / "file-out"}"\n'
                   f'strategy = "classic"\nC_grid = [2.0]\nmax_iter = 300\n')
    result = invoke("train", "--config", cfg, "--out", tmp_path / "flag-out")
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "file-out").exists()
    m = manifest(tmp_path / "flag-out")
    assert m["config"]["C_grid"] == [2.0] and m["config"]["max_iter"] == 300


def test_option_flag_reaches_config_and_beats_config_file(tmp_path, train_csv):
    result = invoke("train", train_csv, "--out", tmp_path / "b", "--strategy", "classic",
                    "--option", "C_grid=[1.0]", "--option", "word-ngrams=[1,1]")
    assert result.exit_code == 0, result.output
    m = manifest(tmp_path / "b")
    assert m["config"]["C_grid"] == [1.0]
    assert m["config"]["word_ngrams"] == [1, 1]
    assert [h["C"] for h in m["metrics"]["history"]] == [1.0]

    cfg = tmp_path / "run.yaml"
    cfg.write_text("strategy: classic\nC_grid: [8.0]\n")
    result = invoke("train", train_csv, "--out", tmp_path / "c", "--config", cfg,
                    "--option", "C_grid=[0.25]")
    assert result.exit_code == 0, result.output
    assert manifest(tmp_path / "c")["config"]["C_grid"] == [0.25]


def test_option_without_equals_sign(tmp_path, train_csv):
    result = invoke("train", train_csv, "--out", tmp_path / "b", "--strategy", "classic",
                    "--option", "C_grid")
    assert_user_error(result, "--option 'C_grid' must look like KEY=VALUE")


def test_missing_data_and_out(tmp_path, train_csv):
    assert_user_error(invoke("train", "--out", tmp_path / "b"), "missing DATA")
    assert_user_error(invoke("train", train_csv), "missing --out")


# --------------------------------------------------------------------------- predict


def test_predict_texts_prints_json_lines(classic_bundle):
    texts = ["the movie was great", "the story was awful", "the acting was french"]
    args = ["predict", classic_bundle]
    for t in texts:
        args += ["--text", t]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    preds = predictions(result.stdout)
    assert [p["row"] for p in preds] == [1, 2, 3]
    assert [p["text"] for p in preds] == texts
    for p in preds:
        assert set(p["probabilities"]) == set(LABELS)
        assert sum(p["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
        assert p["label"] == max(p["probabilities"], key=p["probabilities"].get)
        assert p["score"] == pytest.approx(p["probabilities"][p["label"]])
    assert [p["label"] for p in preds] == ["pos", "neg", "neutral"]  # the model learned something


def test_predict_input_file_keeps_empty_rows(tmp_path, classic_bundle):
    texts = ["the movie was lovely", "", "the story was poor", "   ", "the acting was old"]
    inp = write_csv(tmp_path / "in.csv", [(t,) for t in texts], header=("text",))
    out = tmp_path / "preds.jsonl"
    result = invoke("predict", classic_bundle, "--input", inp, "--output", out)
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert "wrote 5 predictions" in norm(result.stderr)
    assert "2 empty or whitespace-only texts" in norm(result.stderr)
    lines = out.read_text().splitlines()
    assert len(lines) == len(texts)
    preds = [json.loads(line) for line in lines]
    assert [p["row"] for p in preds] == [1, 2, 3, 4, 5]
    assert [p["text"] for p in preds] == ["the movie was lovely", "", "the story was poor", "",
                                          "the acting was old"]
    for p in preds:
        assert sum(p["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert not list(tmp_path.glob(".*tmp*"))  # no temp file left beside the output


def test_predict_input_keeps_trailing_empty_row(tmp_path, classic_bundle):
    inp = write_csv(tmp_path / "in.csv", [("the movie was great",), ("",)], header=("text",))
    assert inp.read_text().splitlines()[-1] == '""'
    result = invoke("predict", classic_bundle, "--input", inp)
    assert result.exit_code == 0, result.output
    assert [p["row"] for p in predictions(result.stdout)] == [1, 2]


def test_predict_input_with_partly_blank_label_column(tmp_path, classic_bundle):
    inp = write_csv(tmp_path / "in.csv", [("the movie was great", "pos"), ("", ""),
                                          ("the story was awful", "")])
    result = invoke("predict", classic_bundle, "--input", inp)
    assert result.exit_code == 0, result.output
    assert [p["row"] for p in predictions(result.stdout)] == [1, 2, 3]


def test_predict_needs_exactly_one_source(tmp_path, classic_bundle, train_csv):
    assert_user_error(invoke("predict", classic_bundle), "give one of: --text")
    assert_user_error(invoke("predict", classic_bundle, "--text", "x", "--input", train_csv),
                      "give one of: --text")


def test_predict_output_into_new_folder(tmp_path, classic_bundle):
    out = tmp_path / "new" / "preds.jsonl"
    result = invoke("predict", classic_bundle, "--text", "great", "--output", out)
    assert result.exit_code == 0, result.output
    assert len(out.read_text().splitlines()) == 1


def test_predict_output_is_a_folder(tmp_path, classic_bundle):
    (tmp_path / "outdir").mkdir()
    result = invoke("predict", classic_bundle, "--text", "great", "--output",
                    tmp_path / "outdir")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outdir"]  # nothing left behind
    assert_user_error(result, "outdir")


# --------------------------------------------------------------------------- evaluate


def test_evaluate_writes_json_markdown_and_png(tmp_path, classic_bundle):
    rows = [(f"the {n} was {a}", y) for n in ("film", "plot")
            for y, a in (("pos", "great"), ("neg", "awful"), ("neutral", "recent"))]
    rows.append(("the film was superb", "pos"))
    data = write_csv(tmp_path / "eval.tsv", rows, delimiter="\t")
    out = tmp_path / "reports" / "report.json"
    result = invoke("evaluate", classic_bundle, data, "--out", out)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert {"accuracy", "macro_f1", "weighted_f1", "per_class", "n"} <= set(report)
    assert report["n"] == len(rows) == 7
    assert set(report["per_class"]) == set(LABELS)
    assert sum(c["support"] for c in report["per_class"].values()) == len(rows)
    assert report["per_class"]["pos"]["support"] == 3
    matrix = report["confusion_matrix"]["matrix"]
    assert report["accuracy"] == pytest.approx(sum(matrix[i][i] for i in range(3)) / len(rows))
    md = (tmp_path / "reports" / "report.md").read_text()
    assert "accuracy" in md and f"{report['accuracy']:.4f}" in md and "| neutral |" in md
    png = (tmp_path / "reports" / "report.png").read_bytes()
    assert png[:8] == PNG_MAGIC and len(png) > 1000
    assert "accuracy" in result.stdout  # the markdown summary is printed


def test_evaluate_quiet_without_out_prints_json(classic_bundle, train_csv):
    result = invoke("evaluate", classic_bundle, train_csv, "--quiet")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["n"] == len(sentiment_rows())
    assert report["accuracy"] > 0.8  # training data: the model fits it


def test_evaluate_out_with_md_suffix_keeps_json(tmp_path, classic_bundle, train_csv):
    result = invoke("evaluate", classic_bundle, train_csv, "--out", tmp_path / "report.md", "-q")
    if result.exit_code == 2:  # refusing the name is fine too
        return
    assert result.exit_code == 0, result.output
    reports = []
    for p in tmp_path.iterdir():
        try:
            reports.append(json.loads(p.read_text()))
        except (ValueError, UnicodeDecodeError):
            pass
    assert any("accuracy" in r for r in reports)


# --------------------------------------------------------------------------- models


def test_models_lists_minilm_installed():
    result = invoke("models")
    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if " minilm " in line)
    assert "yes" in row and "Apache-2.0" in row and "MB" in row


# --------------------------------------------------------------------------- bad input


def test_data_file_missing(tmp_path):
    result = invoke("train", tmp_path / "nope.csv", "--out", tmp_path / "b",
                    "--strategy", "classic")
    assert_user_error(result, "data file not found", "nope.csv")
    assert not (tmp_path / "b").exists()


def test_unknown_extension(tmp_path):
    bad = tmp_path / "train.txt"
    bad.write_text("text,label\na,b\n")
    result = invoke("train", bad, "--out", tmp_path / "b", "--strategy", "classic")
    assert_user_error(result, "unknown file extension '.txt'", "Supported: .csv")


@pytest.mark.parametrize("name,content,words", [
    ("bad.jsonl", '{"text": "a", "label": "pos"}\n{not json\n', ["cannot parse", "line 2"]),
    ("bad.csv", 'text,label\n"never closed,pos\nfine,neg\n', ["cannot parse", "bad.csv"]),
    ("bad.json", '[{"text": "a", "label": "pos"},', ["cannot parse", "bad.json"]),
])
def test_unparseable_file(tmp_path, name, content, words):
    path = tmp_path / name
    path.write_text(content)
    result = invoke("train", path, "--out", tmp_path / "b", "--strategy", "classic")
    assert_user_error(result, *words)


def test_csv_row_with_extra_fields_is_an_error(tmp_path):
    rows = [("the movie was great", "pos", "extra", "fields")] + sentiment_rows()[1:]
    path = write_csv(tmp_path / "shifted.csv", rows)
    result = invoke("train", path, "--out", tmp_path / "b", "--strategy", "classic")
    out = assert_user_error(result, "shifted.csv")
    # today: "only one class 'fields'" - the 4th cell became the label of every row
    assert "only one class" not in out and "field" in out.lower()


def test_text_column_missing_lists_columns(tmp_path):
    path = write_csv(tmp_path / "r.csv", [(t, y) for t, y in sentiment_rows()],
                     header=("review", "label"))
    result = invoke("train", path, "--out", tmp_path / "b", "--strategy", "classic")
    assert_user_error(result, "no text column found", "its columns are: 'review', 'label'",
                      "--text-col")


def test_text_col_naming_missing_column(tmp_path, train_csv):
    result = invoke("train", train_csv, "--out", tmp_path / "b", "--strategy", "classic",
                    "--text-col", "body")
    assert_user_error(result, "text column 'body' not found", "'text', 'label'")


def test_text_col_and_label_col_select_columns(tmp_path):
    path = write_csv(tmp_path / "r.csv", sentiment_rows(), header=("review", "stars"))
    result = invoke("train", path, "--out", tmp_path / "b", "--strategy", "classic",
                    "--text-col", "review", "--label-col", "stars")
    assert result.exit_code == 0, result.output
    assert manifest(tmp_path / "b")["labels"] == LABELS


def test_only_one_class(tmp_path):
    path = write_csv(tmp_path / "one.csv", [(t, "pos") for t, _ in sentiment_rows()])
    result = invoke("train", path, "--out", tmp_path / "b", "--strategy", "classic")
    assert_user_error(result, "only one class 'pos'", "at least two labels")


def test_valid_labels_unseen_in_training(tmp_path, train_csv):
    valid = write_jsonl(tmp_path / "valid.jsonl", [("the plot was fine", "mixed"),
                                                   ("the plot was great", "pos"),
                                                   ("the plot was so-so", "mixed")])
    result = invoke("train", train_csv, "--valid", valid, "--out", tmp_path / "b",
                    "--strategy", "classic")
    assert_user_error(result, "2 of 3 validation examples", "never seen in training",
                      "'mixed' (2)")
    assert not (tmp_path / "b").exists()


def test_empty_texts_dropped_with_count(tmp_path):
    rows = sentiment_rows()
    rows[2] = ("", rows[2][1])
    rows[9] = ("  \t ", rows[9][1])
    path = write_csv(tmp_path / "t.csv", rows)
    result = invoke("train", path, "--out", tmp_path / "b", "--strategy", "classic")
    assert result.exit_code == 0, result.output
    err = norm(result.stderr)
    assert "WARNING" in err
    assert "2 empty or whitespace-only texts" in err and "(rows 3, 10) were dropped" in err
    d = manifest(tmp_path / "b")["data"]
    assert d["n_train"] + d["n_valid"] == len(rows) - 2


def test_missing_labels_name_rows(tmp_path):
    rows = sentiment_rows()
    rows[4] = (rows[4][0], "")
    rows[6] = (rows[6][0], " ")
    path = write_csv(tmp_path / "t.csv", rows)
    result = invoke("train", path, "--out", tmp_path / "b", "--strategy", "classic")
    assert_user_error(result, "2 missing labels in column 'label'", "(rows 5, 7)")


def test_unknown_strategy(tmp_path, train_csv):
    result = invoke("train", train_csv, "--out", tmp_path / "b", "--strategy", "xgboost")
    assert_user_error(result, "unknown strategy 'xgboost'", "classic", "frozen", "finetune")


def test_option_not_for_strategy(tmp_path, train_csv):
    result = invoke("train", train_csv, "--out", tmp_path / "b", "--strategy", "classic",
                    "--epochs", "3")
    assert_user_error(result, "option 'epochs' does not apply to strategy 'classic'",
                      "its options:", "C_grid")
    result = invoke("train", train_csv, "--out", tmp_path / "b", "--strategy", "classic",
                    "--option", "dropout=0.2")
    assert_user_error(result, "option 'dropout' does not apply to strategy 'classic'")
    assert not (tmp_path / "b").exists()


def test_invalid_option_value(tmp_path, train_csv):
    result = invoke("train", train_csv, "--out", tmp_path / "b", "--strategy", "classic",
                    "--valid-fraction", "0.9")
    assert_user_error(result, "option 'valid_fraction' = 0.9", "less than or equal to 0.5")
    result = invoke("train", train_csv, "--out", tmp_path / "b", "--strategy", "classic",
                    "--option", "C_grid=[]")
    assert_user_error(result, "option 'C_grid'")


def test_predict_on_folder_that_is_not_a_bundle(tmp_path):
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "a.txt").write_text("hi")
    assert_user_error(invoke("predict", tmp_path / "stuff", "--text", "x"),
                      "is not a ronghe bundle", "ronghe.json is missing")
    assert_user_error(invoke("predict", tmp_path / "absent", "--text", "x"), "bundle not found")


def test_tampered_arrays_refused(bundle_copy, tmp_path, train_csv):
    arrays = bundle_copy / "arrays.safetensors"
    raw = bytearray(arrays.read_bytes())
    raw[-1] ^= 0x01
    arrays.write_bytes(bytes(raw))
    out = assert_user_error(invoke("predict", bundle_copy, "--text", "x"),
                            "arrays.safetensors does not match the sha256")
    assert "modified or damaged" in out
    assert_user_error(invoke("evaluate", bundle_copy, train_csv), "sha256")


def test_wrong_format_version_refused(bundle_copy):
    m = manifest(bundle_copy)
    m["format_version"] = 99
    (bundle_copy / "ronghe.json").write_text(json.dumps(m))
    assert_user_error(invoke("predict", bundle_copy, "--text", "x"), "format version 99",
                      f"reads version {ronghe.bundle.FORMAT_VERSION}")


def test_bundle_with_missing_file_refused(bundle_copy):
    (bundle_copy / "vocab_word.json").unlink()
    assert_user_error(invoke("predict", bundle_copy, "--text", "x"), "incomplete",
                      "vocab_word.json is missing")


def test_out_existing_foreign_folder_refused_untouched(tmp_path, train_csv):
    folder = tmp_path / "mine"
    (folder / "sub").mkdir(parents=True)
    (folder / "notes.txt").write_text("precious")
    (folder / "sub" / "data.bin").write_bytes(b"\x00\x01")
    before = listing(folder)
    result = invoke("train", train_csv, "--out", folder, "--strategy", "classic")
    assert_user_error(result, "not empty and is not a ronghe bundle", "another --out")
    assert listing(folder) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # no temp folders left


def test_out_is_a_file_refused(tmp_path, train_csv):
    target = tmp_path / "model"
    target.write_text("x")
    result = invoke("train", train_csv, "--out", target, "--strategy", "classic")
    assert_user_error(result, "a file with that name exists")
    assert target.read_text() == "x"


def test_unknown_model_alias_offline_lists_local_options(tmp_path, train_csv):
    result = invoke("train", train_csv, "--out", tmp_path / "b", "--strategy", "frozen",
                    "--model", "no-such-model")
    assert_user_error(result, "could not get model 'no-such-model'", "local options",
                      "minilm (installed)")
    assert not (tmp_path / "b").exists()


# --------------------------------------------------------------------------- overwrite, atomicity


def test_overwrite_existing_bundle(tmp_path, train_csv):
    out = tmp_path / "b"
    assert invoke("train", train_csv, "--out", out, "--strategy", "classic",
                  "--option", "C_grid=[1.0]").exit_code == 0
    result = invoke("train", train_csv, "--out", out, "--strategy", "classic",
                    "--option", "C_grid=[4.0]")
    assert result.exit_code == 0, result.output
    assert manifest(out)["config"]["C_grid"] == [4.0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]  # no .old / .tmp folders
    assert invoke("predict", out, "--text", "the movie was great").exit_code == 0


def test_failed_save_leaves_old_bundle_intact(tmp_path, train_csv, monkeypatch):
    out = tmp_path / "b"
    assert invoke("train", train_csv, "--out", out, "--strategy", "classic").exit_code == 0
    before = listing(out)
    real = ronghe.bundle._write_tree

    def write_half_then_fail(root, header, state):
        root.mkdir(parents=True)
        (root / "arrays.safetensors").write_bytes(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ronghe.bundle, "_write_tree", write_half_then_fail)
    result = invoke("train", train_csv, "--out", out, "--strategy", "classic",
                    "--option", "C_grid=[4.0]")
    assert result.exit_code == 1, result.output
    assert "No space left on device" in norm(result.stderr)
    assert "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]  # no half bundle, no temp folder
    assert listing(out) == before

    # and a failed first save leaves nothing at all
    result = invoke("train", train_csv, "--out", tmp_path / "fresh", "--strategy", "classic")
    assert result.exit_code == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]

    monkeypatch.setattr(ronghe.bundle, "_write_tree", real)
    assert invoke("predict", out, "--text", "the movie was great").exit_code == 0


def test_failed_swap_restores_old_bundle(tmp_path, train_csv, monkeypatch):
    out = tmp_path / "b"
    assert invoke("train", train_csv, "--out", out, "--strategy", "classic").exit_code == 0
    before = listing(out)
    real_replace = os.replace
    calls = []

    def flaky_replace(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:  # 1: old bundle -> .old, 2: new bundle -> target
            raise PermissionError(13, "Permission denied")
        return real_replace(src, dst)

    monkeypatch.setattr(ronghe.bundle.os, "replace", flaky_replace)
    result = invoke("train", train_csv, "--out", out, "--strategy", "classic")
    monkeypatch.setattr(ronghe.bundle.os, "replace", real_replace)
    assert result.exit_code != 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]
    assert listing(out) == before


# --------------------------------------------------------------------------- validation file


def test_duplicates_between_train_and_valid_warned(tmp_path, train_csv):
    rows = sentiment_rows()
    shared = [(t.upper() + "  ", y) for t, y in rows[:3]]  # same after strip + lowercase
    fresh = [(f"the plot was {ADJ[y][i]}", y) for i, y in enumerate(LABELS)]
    valid = write_jsonl(tmp_path / "valid.jsonl", shared + fresh)
    result = invoke("train", train_csv, "--valid", valid, "--out", tmp_path / "b",
                    "--strategy", "classic")
    assert result.exit_code == 0, result.output
    err = norm(result.stderr)
    assert "3 of 6 validation texts also appear in the training data" in err
    d = manifest(tmp_path / "b")["data"]
    assert d["n_train"] == len(rows) and d["n_valid"] == 6  # no split when --valid is given
    assert any("3 of 6 validation texts" in n for n in d["notes"])


def test_no_duplicate_warning_for_distinct_valid(tmp_path, train_csv):
    valid = write_jsonl(tmp_path / "valid.jsonl",
                        [(f"the plot was {ADJ[y][i]}", y) for i, y in enumerate(LABELS)])
    result = invoke("train", train_csv, "--valid", valid, "--out", tmp_path / "b",
                    "--strategy", "classic")
    assert result.exit_code == 0, result.output
    assert "also appear in the training data" not in norm(result.stderr)


# --------------------------------------------------------------------------- transformers


def test_frozen_train_and_predict(tmp_path, train_csv):
    out = tmp_path / "frozen"
    result = invoke("train", train_csv, "--out", out, "--strategy", "frozen", "--max-length", "32",
                    "--option", "C_grid=[1.0]", "--device", "cpu")
    assert result.exit_code == 0, result.output
    m = manifest(out)
    assert m["strategy"] == "frozen"
    assert m["backbone"]["ref"] == "minilm" and len(m["backbone"]["sha256"]) == 64
    assert m["config"]["max_length"] == 32 and m["config"]["model"] == "minilm"
    assert "arrays.safetensors" in m["files"] and "model.safetensors" not in m["files"]
    result = invoke("predict", out, "--text", "the movie was wonderful", "--text", "")
    assert result.exit_code == 0, result.output
    preds = predictions(result.stdout)
    assert len(preds) == 2
    assert all(sum(p["probabilities"].values()) == pytest.approx(1.0, abs=1e-4) for p in preds)


def test_finetune_train_predict_and_tamper(tmp_path, train_csv):
    out = tmp_path / "ft"
    result = invoke("train", train_csv, "--out", out, "--strategy", "finetune", "--epochs", "1",
                    "--max-length", "32", "--device", "cpu", "--quiet")
    assert result.exit_code == 0, result.output
    m = manifest(out)
    assert m["strategy"] == "finetune" and m["config"]["epochs"] == 1
    assert len(m["metrics"]["history"]) == 1
    assert {"model.safetensors", "model/config.json"} <= set(m["files"])
    assert any(f.startswith("tokenizer/") for f in m["files"])
    result = invoke("predict", out, "--text", "the story was superb")
    assert result.exit_code == 0, result.output
    [pred] = predictions(result.stdout)
    assert pred["label"] in LABELS
    assert sum(pred["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)

    weights = out / "model.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    weights.write_bytes(bytes(raw))
    assert_user_error(invoke("predict", out, "--text", "x"),
                      "model.safetensors does not match the sha256")


# --------------------------------------------------------------------------- console script


def _console_script() -> str:
    exe = Path(sys.executable).parent / ("ronghe.exe" if os.name == "nt" else "ronghe")
    return str(exe) if exe.exists() else shutil.which("ronghe")


def test_console_script_exit_codes(tmp_path, classic_bundle):
    exe = _console_script()
    assert exe, "the ronghe console script is not installed"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "400"}
    env.pop("RONGHE_DEBUG", None)
    ok = subprocess.run([exe, "predict", str(classic_bundle), "--text", "the movie was superb"],
                        capture_output=True, text=True, env=env, timeout=120)
    assert ok.returncode == 0, ok.stderr
    [pred] = predictions(ok.stdout)
    assert pred["label"] == "pos" and pred["row"] == 1

    bad = subprocess.run([exe, "train", str(tmp_path / "missing.csv"), "--out",
                          str(tmp_path / "b"), "--strategy", "classic"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2
    assert "data file not found" in norm(bad.stderr)
    assert "Traceback" not in bad.stderr and bad.stdout == ""
