"""The made-up shop, a recommender fitted on it (once per session) and its bundle."""

from __future__ import annotations

import pytest
from rec_material import OPTIONS, interactions_frame, items_frame

from ronghe.apps.recommend.data import items_from_frame, leave_last_out

@pytest.fixture(scope="session")
def shop(tmp_path_factory):
    d = tmp_path_factory.mktemp("shop")
    inter = interactions_frame()
    train, test = leave_last_out(inter, 1)
    items = items_frame()
    paths = {"inter": d / "inter.csv", "train": d / "train.csv", "test": d / "test.csv",
             "items": d / "items.csv"}
    inter.to_csv(paths["inter"], index=False)
    train.to_csv(paths["train"], index=False)
    test.to_csv(paths["test"], index=False)
    items.to_csv(paths["items"], index=False)
    return {"paths": paths, "inter": inter, "train": train, "test": test,
            "items": items_from_frame(items, "items.csv", text_cols=["title"])}


@pytest.fixture(scope="session")
def rec(shop):
    from ronghe.apps.recommend import Recommender

    return Recommender(**OPTIONS).fit(shop["train"], shop["items"])


@pytest.fixture(scope="session")
def saved(rec, tmp_path_factory):
    return rec.save(tmp_path_factory.mktemp("bundles") / "shop")
