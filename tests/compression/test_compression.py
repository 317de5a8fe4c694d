"""Compression and export: ONNX parity, the onnxruntime backend (also without torch), int8,
bf16, pruning with recovery, and the accuracy gate."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from ronghe import TextClassifier, data, load
from ronghe.cli import app
from ronghe.compression import export, gate

NET = {"max_length": 32, "batch_size": 8}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from makers import make_sentiment

    root = tmp_path_factory.mktemp("c")
    train, valid = make_sentiment(24, 0), make_sentiment(10, 1)
    train.to_csv(root / "train.csv", index=False)
    valid.to_csv(root / "valid.csv", index=False)
    clf = TextClassifier(strategy="finetune", epochs=2, **NET).fit(train, valid)
    return clf, clf.save(root / "ft"), root


def test_onnx_export_parity_and_round_trip(model, tmp_path):
    clf, path, root = model
    r = CliRunner().invoke(app, ["export", str(path), "--format", "onnx", "--out", str(tmp_path / "o"),
                                 "--valid", str(root / "valid.csv")])
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "o" / "ronghe.json").read_text())
    assert m["strategy"] == "onnx"
    assert m["compression"]["parity"]["max_abs_logits_diff"] < 1e-4
    assert m["compression"]["parity"]["label_agreement"] == 1.0
    import onnx

    ops = {n.op_type for n in onnx.load(str(tmp_path / "o" / "model.onnx")).graph.node}
    assert {"Attention", "SkipLayerNormalization"} <= ops  # onnxruntime's fused kernels
    onnx_clf = load(tmp_path / "o")
    texts = ["a lovely film", "dull", "the plot makes no sense at all " * 30]  # long: truncated
    np.testing.assert_allclose(onnx_clf.predict_proba(texts), clf.predict_proba(texts), atol=1e-4)


def test_onnx_bundle_loads_without_torch(model, tmp_path):
    clf, path, _ = model
    onnx_path = export.as_onnx(clf).save(tmp_path / "o")
    expected = clf.predict_proba(["great fun", "awful"]).tolist()
    script = textwrap.dedent(f"""
        import sys, json

        class Block:  # any import of torch, transformers or peft fails, as if not installed
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("torch", "transformers", "peft"):
                    raise ImportError(f"No module named {{name!r}}", name=name)

        sys.meta_path.insert(0, Block())
        import ronghe
        clf = ronghe.load({str(onnx_path)!r})
        print(json.dumps(clf.predict_proba(["great fun", "awful"]).tolist()))
        assert not any(m.split(".")[0] in ("torch", "transformers") for m in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")})
    assert out.returncode == 0, out.stderr
    np.testing.assert_allclose(json.loads(out.stdout.strip().splitlines()[-1]), expected, atol=1e-4)


def test_int8_dynamic_passes_gate_and_is_smaller(model, tmp_path):
    clf, path, root = model
    r = CliRunner().invoke(app, ["compress", str(path), "--quantize", "int8", "--valid",
                                 str(root / "valid.csv"), "--max-drop", "10", "--out",
                                 str(tmp_path / "q")], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    rep = json.loads((tmp_path / "q.report.json").read_text())
    assert rep["compressed"]["size_mb"] < 0.5 * rep["original"]["size_mb"]
    assert rep["steps"][0]["method"] == "int8-dynamic"
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    cpu = rep["steps"][0]["cpu"]  # what this CPU limits, in the report and on the screen
    assert cpu["int8"] == ("AMX int8 tiles" if "amx_int8" in flags else "VNNI"
                           if "vnni" in flags else "AVX2 without VNNI" if "avx2" in flags
                           else "no AVX2")
    assert rep["steps"][0]["reduce_range"] == (cpu["int8"] == "AVX2 without VNNI" or
                                               cpu["int8"] == "no AVX2")
    assert "int8 on this CPU" in r.output
    assert {"latency_b1_p50_ms", "latency_b1_p95_ms", "latency_b32_p50_ms"} <= set(rep["compressed"])
    m = json.loads((tmp_path / "q" / "ronghe.json").read_text())
    assert m["compression"]["steps"][0]["step"] == "quantize" and m["strategy"] == "onnx"


def test_gate_refuses_and_writes_nothing(model, tmp_path):
    clf, path, root = model
    r = CliRunner().invoke(app, ["compress", str(path), "--prune", "unstructured:0.95",
                                 "--valid", str(root / "valid.csv"), "--max-drop", "0",
                                 "--out", str(tmp_path / "p")])
    assert r.exit_code == 3, r.output
    assert "accuracy gate failed" in r.output and "Nothing was written" in r.output.replace("\n", " ")
    assert not (tmp_path / "p").exists() and not list(tmp_path.iterdir())


def test_pruning_variants_round_trip(model, tmp_path):
    clf, _, root = model
    valid = data.load(root / "valid.csv")
    train = data.load(root / "train.csv")
    for spec in ("unstructured:0.3", "layers:3", "heads:4"):
        small, desc = gate.compress(clf, valid=valid, train=train, prune=spec, max_drop=100)
        enc = small.strategy_.model.encoder
        if spec.startswith("unstructured"):
            assert desc["steps"][0]["sparsity"] >= 0.29
        if spec.startswith("layers"):
            assert len(enc.encoder.layer) == 3
        if spec.startswith("heads"):
            assert enc.encoder.layer[0].attention.self.query.out_features == 384 - 4 * 32
        assert small.config_.epochs == clf.config_.epochs  # the recovery run is a step, not the config
        assert desc["steps"][0]["recovery"]["examples"] == len(train)
        path = small.save(tmp_path / spec.replace(":", "-"))
        np.testing.assert_allclose(load(path).predict_proba(["nice"]), small.predict_proba(["nice"]),
                                   atol=1e-6)


def test_bf16_halves_the_weights(model, tmp_path):
    clf, _, root = model
    small, desc = gate.compress(clf, valid=data.load(root / "valid.csv"), quantize_to="bf16",
                                max_drop=100)
    path = small.save(tmp_path / "bf16")
    assert (path / "model.safetensors").stat().st_size < 0.6 * (
        Path(clf.save(tmp_path / "fp32")) / "model.safetensors").stat().st_size
    again = load(path)
    assert again.config_.precision == "bf16"
    assert next(again.strategy_.model.parameters()).dtype == torch.bfloat16  # served as checked
    np.testing.assert_allclose(again.predict_proba(["nice", "awful"]),
                               small.predict_proba(["nice", "awful"]), atol=1e-6)
    assert next(clf.strategy_.model.parameters()).dtype == torch.float32  # original untouched


def test_export_leaves_the_callers_model_alone(model):
    inner = copy.deepcopy(model[0].strategy_)
    inner.model.to(torch.bfloat16)
    assert export.onnx_bytes(inner)[:2]  # exported in fp32 from a copy ...
    assert next(inner.model.parameters()).dtype == torch.bfloat16  # ... the caller's stays bf16


@pytest.mark.skipif(os.environ.get("RONGHE_SKIP_VENV_TEST") == "1", reason="RONGHE_SKIP_VENV_TEST=1")
def test_onnx_extra_in_a_venv_without_torch(model, tmp_path):
    """pip install 'ronghe[onnx]' into a fresh venv (no torch, no transformers) and predict."""
    clf, _, _ = model
    onnx_path = export.as_onnx(clf).save(tmp_path / "o")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    repo = Path(__file__).parents[2]
    inst = subprocess.run([str(py), "-m", "pip", "install", "-q", f"{repo}[onnx]"],
                          capture_output=True, text=True)
    assert inst.returncode == 0, inst.stderr[-3000:]
    out = subprocess.run([str(py), "-c", "import json, importlib.util, ronghe; "
                          "assert importlib.util.find_spec('torch') is None; "
                          f"c = ronghe.load({str(onnx_path)!r}); "
                          "print(json.dumps(c.predict_proba(['great fun', 'awful']).tolist()))"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    np.testing.assert_allclose(json.loads(out.stdout.strip().splitlines()[-1]),
                               clf.predict_proba(["great fun", "awful"]), atol=1e-4)
    cli = subprocess.run([str(venv / "bin" / "ronghe"), "predict", str(onnx_path), "--text", "nice"],
                         capture_output=True, text=True)
    assert cli.returncode == 0 and '"label"' in cli.stdout, cli.stderr[-2000:]


def _sabotage(clf, layer: int = 3):
    """A copy of ``clf`` whose fp32 outputs are unchanged but whose layer ``layer`` int8 cannot
    represent: one feed-forward unit outputs a constant that weights of +-1000 multiply and the
    output bias cancels exactly in fp32; int8's rounding of that constant leaves +-1000 times the
    rounding error in every hidden unit (and the other weights of the layer round to 0)."""
    clf = copy.deepcopy(clf)
    ffn = clf.strategy_.model.encoder.encoder.layer[layer]
    c = torch.nn.functional.gelu(torch.tensor(0.37)).item()
    sign = torch.randint(0, 2, (ffn.output.dense.weight.shape[0],),
                         generator=torch.Generator().manual_seed(0)).float() * 2 - 1
    with torch.no_grad():
        ffn.intermediate.dense.weight[0] = 0
        ffn.intermediate.dense.bias[0] = 0.37
        ffn.output.dense.weight[:, 0] = 1000 * sign
        ffn.output.dense.bias -= 1000 * sign * c
    return clf


def test_int8_gate_keeps_the_sensitive_layer_in_fp32_to_pass(model, tmp_path):
    clf, _, root = model
    bad = _sabotage(clf)
    valid = data.load(root / "valid.csv")
    assert bad.evaluate(valid)["accuracy"] == clf.evaluate(valid)["accuracy"]  # fp32 unharmed
    with pytest.raises(gate.GateError, match="lost"):
        gate.compress(bad, valid=valid, quantize_to="int8", max_drop=1.0, max_fp32_parts=0)
    out, desc = gate.compress(bad, valid=valid, quantize_to="int8", max_drop=1.0)
    step = desc["steps"][0]
    assert step["fp32_parts"] == ["layer.3"] and desc["drop_points"] <= 1.0
    cost = step["search"]["sensitivity_points"]
    assert max(cost, key=cost.get) == "layer.3" and cost["layer.3"] > 1.0
    assert {"embeddings", "layer.0", "layer.5"} <= set(cost)
    tried = step["search"]["tried"]
    assert tried[0]["fp32"] == [] and tried[0]["drop_points"] > 1.0  # all int8 failed first
    assert tried[-1]["fp32"] == ["layer.3"] and tried[-1]["size_mb"] > tried[0]["size_mb"]
    same = load(out.save(tmp_path / "q"))
    assert same.predict(valid.texts).tolist() == clf.predict(valid.texts).tolist()
    assert json.loads((tmp_path / "q" / "ronghe.json").read_text())["compression"]["steps"][0][
        "fp32_parts"] == ["layer.3"]


def test_a_drop_of_exactly_max_drop_passes_the_gate_and_its_search_alike():
    """4 of 800 validation examples lost is 0.5 points: the gate (drop > max_drop) and the
    fp32-parts search (drop <= max_drop) must read it the same way, float noise or not."""
    from ronghe.compression.gate import points_lost

    assert (0.92625 - 0.92125) * 100 > 0.5  # the raw difference the gate compared before
    assert points_lost(0.92625, 0.92125) == 0.5
    assert points_lost(0.92625, 0.92) > 0.5 and points_lost(0.9, 0.9) == 0.0


def test_serving_gives_onnx_models_its_inference_threads(model, tmp_path):
    """``inference_threads`` reaches onnxruntime as it reaches torch: an ONNX model served with
    one inference thread runs one intra-op thread, not one per core - whether the server loads
    its models before the app starts (``ronghe serve``) or as it starts."""
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from ronghe.runtime import onnx
    from ronghe.serving.app import create_app
    from ronghe.serving.server import build_config, make_server

    clf, _, _ = model
    path = export.as_onnx(clf).save(tmp_path / "o")
    assert load(path).strategy_.session.get_session_options().intra_op_num_threads == \
        onnx.default_threads()
    cfg = build_config([f"m={path}"], env={}, watch_interval_s=0, request_log=None,
                       inference_threads=1)

    torch_threads = torch.get_num_threads()  # serving sets torch's too

    def intra_op_threads(app) -> int:
        served = app.state.service.registry.get("m").current.predictor
        return served.estimator.strategy_.session.get_session_options().intra_op_num_threads

    try:
        # `ronghe serve` loads its models before the app starts
        assert intra_op_threads(make_server(cfg).config.app) == 1
        onnx.set_process_threads(None)
        app = create_app(cfg)  # an app built directly loads them as it starts
        with TestClient(app) as c:
            for _ in range(500):
                if c.get("/readyz").status_code == 200:
                    break
                time.sleep(0.02)
            r = c.post("/v1/models/m/predict", json={"texts": ["great fun"]})
            assert r.status_code == 200, r.text
            assert intra_op_threads(app) == 1
    finally:  # the process-wide settings must not leak into other tests
        onnx.set_process_threads(None)
        torch.set_num_threads(torch_threads)
