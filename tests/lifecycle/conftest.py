"""A small sentiment model (classic: trains in a second) and data files made here: in-domain
reviews and an off-domain stream (banking requests)."""

from __future__ import annotations

import random

import pandas as pd
import pytest

from makers import make_sentiment

BANKING = ["my card has not arrived yet", "how do i transfer money abroad", "what is my balance",
           "i lost my card please block it", "why was i charged a fee", "top up my account",
           "change my pin number", "the atm kept my card", "cancel a pending payment",
           "how long does a transfer take", "verify my identity", "exchange rate for euros"]


def banking_frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = random.Random(seed)
    tail = ["", " please", " today", " asap", " thanks", " now"]
    return pd.DataFrame({"text": [rng.choice(BANKING) + rng.choice(tail) + f" #{i}"
                                  for i in range(n)]})


@pytest.fixture(scope="session")
def sentiment_bundle(tmp_path_factory):
    from ronghe import TextClassifier

    clf = TextClassifier("classic").fit(make_sentiment(60, seed=0), make_sentiment(20, seed=1))
    return clf.save(tmp_path_factory.mktemp("models") / "sentiment")


@pytest.fixture(scope="session")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("lifecycle-data")
    make_sentiment(80, seed=3).to_csv(d / "reference.csv", index=False)  # labelled validation
    make_sentiment(80, seed=4).drop(columns="label").to_csv(d / "same.csv", index=False)
    banking_frame(160).to_csv(d / "banking.csv", index=False)
    make_sentiment(20, seed=5).to_csv(d / "small.csv", index=False)
    return d
