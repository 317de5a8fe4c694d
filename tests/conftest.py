"""Shared fixtures: tiny labeled data made here, and the packaged MiniLM (offline)."""

from __future__ import annotations

import os
import random

import pandas as pd
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

POS = ["a wonderful, moving film", "great acting and a clever script", "i loved every minute",
       "funny, warm and beautifully shot", "a delight from start to finish", "brilliant and touching",
       "the best movie of the year", "superb performances all round", "charming and smart",
       "an excellent, gripping story", "truly enjoyable and fresh", "a joyful, inventive ride"]
NEG = ["a dull, lifeless mess", "boring and far too long", "i hated the clumsy dialogue",
       "the plot makes no sense at all", "a tedious waste of time", "awful acting, weak script",
       "the worst film this year", "painfully slow and predictable", "flat, tired and ugly",
       "a noisy, pointless sequel", "terrible jokes that never land", "bland and forgettable"]


def make_sentiment(n_per_class: int = 24, seed: int = 0) -> pd.DataFrame:
    """Short synthetic reviews: positive/negative templates with varied fillers."""
    rng = random.Random(seed)
    fillers = ["", " overall", " honestly", " in the end", " for me", " really", " again"]
    rows = []
    for label, pool in (("pos", POS), ("neg", NEG)):
        for i in range(n_per_class):
            rows.append({"text": pool[i % len(pool)] + rng.choice(fillers) + f" ({i})", "label": label})
    rng.shuffle(rows)
    return pd.DataFrame(rows)


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


BLOCK_TORCH = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'transformers', 'peft'):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, _Block())
"""


def run_without_torch(code: str):
    """Run ``code`` in a fresh interpreter where torch, transformers and peft cannot be imported,
    as on a lean ``pip install 'ronghe[onnx]'``."""
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-c", BLOCK_TORCH + code], capture_output=True,
                          text=True)
