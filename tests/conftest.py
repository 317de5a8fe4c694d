"""Shared fixtures: tiny labeled data made here, and the packaged MiniLM (offline)."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from makers import make_sentiment

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# precision 'auto' means bf16 on CPUs with AMX tiles: the suite checks numbers (parity with
# ONNX, stored predictions of old bundles) that must not depend on the CPU CI lands on
os.environ.setdefault("RONGHE_AUTO_PRECISION", "fp32")


@pytest.fixture
def sentiment_df() -> pd.DataFrame:
    return make_sentiment()


@pytest.fixture
def sentiment_split() -> tuple[pd.DataFrame, pd.DataFrame]:
    return make_sentiment(24, seed=0), make_sentiment(8, seed=1)


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory):
    """A randomly initialised 2-layer BERT (hidden size 32) with a small WordPiece vocabulary,
    as a local model folder: network strategies train on it in a second."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent / "data" / "bundles"))
    from make_legacy import tiny_backbone

    return str(tiny_backbone(tmp_path_factory.mktemp("tiny-bert")))


@pytest.fixture(scope="session")
def tiny_vision(tmp_path_factory):
    """A randomly initialised tiny timm network as a vision backbone folder (config.json with
    architecture + pretrained_cfg, model.safetensors)."""
    import json

    import timm
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("tiny-vision")
    model = timm.create_model("test_efficientnet", pretrained=False, num_classes=0)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({
        "architecture": "test_efficientnet", "num_classes": 0,
        "pretrained_cfg": {"input_size": [3, 64, 64], "interpolation": "bilinear",
                           "crop_pct": 0.9, "mean": [0.485, 0.456, 0.406],
                           "std": [0.229, 0.224, 0.225]}}))
    return str(folder)


PG_ENV = "RONGHE_TEST_PG_URL"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """(Every test folder: the assistant, the monitor, the lifecycle.) A fresh database: an SQLite file, or a new PostgreSQL database on the server named by
    RONGHE_TEST_PG_URL (skipped only where that variable is unset; .ci/run sets it)."""
    if request.param == "sqlite":
        yield str(tmp_path / "assist.sqlite")
        return
    import os
    import uuid

    base = os.environ.get(PG_ENV)
    if not base and os.environ.get("CI"):
        pytest.fail(f"{PG_ENV} is not set in CI: .ci/run starts PostgreSQL and exports it")
    if not base:
        pytest.skip(f"{PG_ENV} is not set (.ci/run starts PostgreSQL and sets it)")
    import sqlalchemy as sa

    name = f"ronghe_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(base).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        sa.create_engine(url).dispose()
        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
