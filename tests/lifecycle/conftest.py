"""A small sentiment model (classic: trains in a second) and data files made here: in-domain
reviews and an off-domain stream (banking requests)."""

from __future__ import annotations

import pytest

from makers import banking_frame, make_sentiment

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
