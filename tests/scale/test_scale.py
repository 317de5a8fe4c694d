"""Scaling out: streamed batch prediction (local and Ray Data give the same predictions, bad rows
are listed by row number), data-parallel training (torchrun with 2 gloo processes and Ray Train
reach the 1-process validation accuracy with the same effective batch), the Ray engines' CLI.

One local Ray instance for the whole folder (2 CPUs, a 200 MB object store: containers have a
small /dev/shm), shut down at the end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from makers import free_port, make_sentiment
from ronghe.cli import app

SRC = Path(__file__).resolve().parents[2] / "src"


# Ray's worker processes inherit the environment of the raylet this process starts, so it is set
# there (a job runtime_env gives the job's workers an environment of their own); Ray Train's
# controller polls its workers every 0.2 s instead of 2 s and starts no preemption watcher (one
# process less) - test speed only, the training is the same.
RAY_ENV = {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.2", "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0"}


@pytest.fixture(scope="session")
def ray_local():
    ray = pytest.importorskip("ray")
    saved = {k: os.environ.get(k) for k in RAY_ENV}
    os.environ.update(RAY_ENV)
    try:
        ray.init(num_cpus=2, object_store_memory=int(2e8), include_dashboard=False,
                 log_to_driver=False)
    finally:
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def classic(tmp_path_factory):
    from ronghe import TextClassifier

    folder = tmp_path_factory.mktemp("classic")
    clf = TextClassifier(strategy="classic").fit(make_sentiment(24))
    return clf, clf.save(folder / "bundle")


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> pd.DataFrame:
    df = make_sentiment(150, seed=3).drop(columns=["label"])  # 300 rows
    df.insert(0, "id", np.arange(1000, 1000 + len(df)))
    df.loc[4, "text"] = ""
    return df


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


# --------------------------------------------------------------------------- one machine


def test_predict_streams_chunks_into_parquet(tmp_path, classic, table, monkeypatch):
    from ronghe.scale import stream

    clf, bundle = classic
    table.to_csv(tmp_path / "in.csv", index=False)
    seen = []
    real = stream.read_chunks
    monkeypatch.setattr(stream, "read_chunks", lambda p, n=0: (seen.append(len(c)) or c
                                                               for c in real(p, 64)))
    r = invoke("predict", bundle, "--input", tmp_path / "in.csv", "--output", tmp_path / "o.parquet")
    assert r.exit_code == 0, r.output
    assert seen == [64, 64, 64, 64, 44]  # read and written a chunk at a time
    assert "1 empty or whitespace-only text (row 5)" in " ".join(r.stderr.split())
    out = pd.read_parquet(tmp_path / "o.parquet")
    assert out["row"].tolist() == list(range(1, 301))
    assert out["id"].astype(int).tolist() == table["id"].tolist()  # the input's columns carried
    expected = clf.predict(table["text"].tolist())
    assert out["label"].tolist() == list(expected)
    assert out["error"].isna().all()
    assert not list(tmp_path.glob(".*tmp*"))


def test_a_bad_row_is_reported_by_row_number_not_a_crash(tmp_path, classic, table, caplog):
    from ronghe.scale import stream

    clf, _ = classic

    class Fussy:  # a model that cannot predict one input (as a bad feature value would)
        def __getattr__(self, name):
            return getattr(clf, name)

        def predict_records(self, ds):
            if any("BROKEN" in t for t in ds.texts):
                raise ValueError("cannot read this row")
            return clf.predict_records(ds)

    df = table.head(40).copy()
    df.loc[[6, 30], "text"] = "BROKEN row"
    df.to_csv(tmp_path / "in.csv", index=False)
    predictor = stream.ChunkPredictor(clf)
    predictor.clf = Fussy()
    out = predictor(stream.data.read_table(tmp_path / "in.csv"), 1, "in.csv")
    assert out.loc[out["error"].notna(), "row"].tolist() == [7, 31]
    assert "cannot read this row" in out.loc[6, "error"]
    assert out["label"].notna().sum() == 38  # the other rows are predicted
    tally = stream.Tally()
    tally.add_bad("", out["row"][out["error"].notna()], out["error"].dropna())
    tally.report()
    assert "2 rows could not be predicted (row 7: ValueError" in caplog.text


# --------------------------------------------------------------------------- Ray Data


def test_ray_batch_inference_matches_the_local_path(tmp_path, ray_local, classic, table):
    """One Ray Data run through the CLI (2 actors, 64-row batches): every row, numbered as the
    local path numbers it (the input has no id column), the same predictions."""
    from ronghe.scale import batch, stream

    _, bundle = classic
    table.drop(columns=["id"]).to_csv(tmp_path / "in.csv", index=False)
    local = stream.predict_files(bundle, tmp_path / "in.csv", tmp_path / "local.parquet")
    assert local["rows"] == 300
    batch.BATCH_ROWS, before = 64, batch.BATCH_ROWS
    try:
        r = invoke("predict", bundle, "--input", tmp_path / "in.csv", "--output",
                   tmp_path / "ray.parquet", "--engine", "ray", "--workers", "2")
    finally:
        batch.BATCH_ROWS = before
    assert r.exit_code == 0, r.output
    assert "wrote 300 predictions" in r.stderr
    a = pd.read_parquet(tmp_path / "local.parquet")
    b = pd.read_parquet(tmp_path / "ray.parquet").sort_values("row").reset_index(drop=True)
    assert b["row"].tolist() == a["row"].tolist() == list(range(1, 301))
    assert b["label"].tolist() == a["label"].tolist()
    np.testing.assert_allclose(a["score"], b["score"], atol=1e-9)
    assert b["error"].isna().all()


# --------------------------------------------------------------------------- training


# 3 epochs of 16 steps (64 examples, effective batch 4: 2 a process) - enough for the tiny BERT
# to separate the classes; without dropout the 2-process run computes the 1-process gradients
TRAIN = ["--strategy", "finetune", "--epochs", "3", "--batch-size", "4", "--learning-rate",
         "2e-3", "--option", "dropout=0.0", "-q"]


@pytest.fixture(scope="module")
def train_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp")
    make_sentiment(32, seed=0).to_csv(folder / "train.csv", index=False)
    make_sentiment(16, seed=5).to_csv(folder / "valid.csv", index=False)
    return folder


def _valid_accuracy(bundle: Path) -> float:
    return json.loads((bundle / "ronghe.json").read_text())["metrics"]["valid"]["accuracy"]


@pytest.fixture(scope="module")
def one_process(train_files, tiny_bert):
    out = train_files / "one"
    r = invoke("train", train_files / "train.csv", "--valid", train_files / "valid.csv",
               "--model", tiny_bert, "--out", out, *TRAIN)
    assert r.exit_code == 0, r.output
    return _valid_accuracy(out)


@pytest.fixture(scope="module", autouse=True)
def torchrun_job(train_files, tiny_bert):
    """The two-process torchrun training, started in the background when the module starts: its
    two processes spend most of their time importing torch and transformers, which overlaps
    with Ray's start-up and the Ray tests; its test collects it."""
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
           "--standalone", "-m", "ronghe", "train", str(train_files / "train.csv"),
           "--valid", str(train_files / "valid.csv"), "--model", tiny_bert, "--out",
           str(train_files / "two"), *TRAIN]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.communicate()


def test_torchrun_two_processes_reach_the_one_process_accuracy(train_files, torchrun_job,
                                                               one_process):
    out = train_files / "two"
    _, err = torchrun_job.communicate(timeout=240)
    assert torchrun_job.returncode == 0, err[-3000:]
    manifest = json.loads((out / "ronghe.json").read_text())
    assert manifest["strategy"] == "finetune"  # an ordinary bundle
    assert abs(_valid_accuracy(out) - one_process) <= 0.1, (_valid_accuracy(out), one_process)
    assert one_process >= 0.8
    # the schedule: 64 examples / effective batch 4 = 16 steps an epoch, as in one process
    rows = (out.parent / "two.run" / "metrics.csv").read_text().splitlines()
    steps = [int(r.split(",")[2]) for r in rows[1:] if r.startswith("epoch")]
    assert steps[0] == 16


def test_ray_train_gives_an_ordinary_bundle(train_files, tiny_bert, ray_local, one_process):
    out = train_files / "ray"
    r = invoke("train", train_files / "train.csv", "--valid", train_files / "valid.csv",
               "--model", tiny_bert, "--out", out, "--engine", "ray", "--workers", "2", *TRAIN)
    assert r.exit_code == 0, r.output
    from ronghe import load

    clf = load(out)
    assert clf.strategy == "finetune" and list(clf.classes_) == ["neg", "pos"]
    assert abs(_valid_accuracy(out) - one_process) <= 0.1
    assert list((train_files / "ray.ray" / "ronghe-train").glob("checkpoint_*"))


# --------------------------------------------------------------------------- tuning


def test_ray_tune_writes_the_best_config_as_the_local_search_does(tmp_path, ray_local):
    """Ray Tune runs the local search's trials (Optuna sampler, 2 at a time) and best.yaml has
    the local search's form, holding the best of the trials' reported scores."""
    import yaml

    make_sentiment(30, seed=1).to_csv(tmp_path / "train.csv", index=False)
    r = invoke("tune", tmp_path / "train.csv", "--strategy", "classic", "--trials", "2",
               "--engine", "ray", "--concurrent", "2", "--study-dir", tmp_path / "study", "-q")
    assert r.exit_code == 0, r.output
    text = (tmp_path / "study" / "best.yaml").read_text()
    best = yaml.safe_load(text)
    assert list(best) == ["strategy", "data", "task", "C_grid", "max_features", "char_ngrams"]
    assert best["strategy"] == "classic" and 0.1 <= best["C_grid"][0] <= 100
    finals = []
    for f in (tmp_path / "study" / "ray").glob("*/*/result.json"):
        last = json.loads(f.read_text().splitlines()[-1])
        assert last["complete"] == 1
        finals.append(last["score"])
    assert len(finals) == 2
    assert text.startswith(f"# best of 2 trials in {tmp_path / 'study' / 'ray'}")
    assert f"macro-F1 {max(finals):.4f}" in text.splitlines()[0]


# --------------------------------------------------------------------------- Ray Serve


def test_serve_on_ray_is_the_same_service_with_autoscaled_replicas(tmp_path, ray_local, classic):
    import httpx

    from ronghe.scale import serve as ray_serve
    from ronghe.serving.server import build_config

    clf, bundle = classic
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"ci": {"key": "s3cret-key-for-ray-serve"}}))
    config = build_config([bundle], port=free_port(), api_keys=keys, request_log="off")
    opts = ray_serve.options({"min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 2,
                              "replica_cpus": 0.5, "upscale_delay_s": 0})
    url = ray_serve.start(config, opts, wait_ready_s=180)
    try:
        texts = ["a wonderful, moving film", "dull and far too long"]
        auth = {"Authorization": "Bearer s3cret-key-for-ray-serve"}
        r = httpx.post(f"{url}/v1/models/bundle/predict", json={"texts": texts}, headers=auth,
                       timeout=30)
        assert r.status_code == 200, r.text
        assert [p["label"] for p in r.json()["predictions"]] == list(clf.predict(texts))
        # the app's own key check and error format, through Ray's proxy
        denied = httpx.post(f"{url}/v1/models/bundle/predict", json={"texts": texts}, timeout=30)
        assert denied.status_code == 401 and denied.json()["error"]["code"]
        assert "ronghe_requests_total" in httpx.get(f"{url}/metrics", headers=auth,
                                                    timeout=30).text
        assert ray_serve.replicas().get("RUNNING", 0) >= 1
        from ray import serve

        dep = serve.status().applications["ronghe"].deployments["RongheService"]
        assert dep.status.value in ("HEALTHY", "UPSCALING", "DOWNSCALING")
    finally:
        ray_serve.stop()
    with pytest.raises(Exception):
        httpx.get(f"{url}/readyz", timeout=5).raise_for_status()


def test_serve_engine_ray_refuses_bad_scaling_options(classic):
    _, bundle = classic
    r = invoke("serve", bundle, "--engine", "ray", "--min-replicas", "3", "--max-replicas", "2")
    assert r.exit_code == 2 and "max_replicas (2) must be at least min_replicas (3)" in r.output
    r = invoke("serve", bundle, "--engine", "ray", "--workers", "2")
    assert r.exit_code == 2 and "--max-replicas" in r.output
    r = invoke("serve", bundle, "--engine", "k8s")
    assert r.exit_code == 2 and "use local or ray" in r.output


def test_a_deployment_that_never_gets_ready_is_removed(monkeypatch, classic):
    from ray import serve

    from ronghe.errors import ConfigError
    from ronghe.scale import serve as ray_serve
    from ronghe.serving.server import build_config

    calls = []
    monkeypatch.setattr(ray_serve, "connect", lambda address=None, **local: None)
    monkeypatch.setattr(serve, "start", lambda **kw: calls.append("start"))
    monkeypatch.setattr(serve, "run", lambda app, **kw: calls.append("run"))
    monkeypatch.setattr(serve, "delete", lambda name: calls.append(f"delete {name}"))

    def never(url, timeout):
        raise ConfigError(f"the Ray Serve deployment at {url} was not ready")

    monkeypatch.setattr(ray_serve, "_wait_ready", never)
    config = build_config([classic[1]], port=9, request_log="off")
    with pytest.raises(ConfigError, match="not ready"):
        ray_serve.start(config, ray_serve.options({}), wait_ready_s=1)
    assert calls == ["start", "run", "delete ronghe"]
