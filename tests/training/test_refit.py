"""Small-data training defaults: the training batch chosen by the data's size, ``refit`` (after
the automatic hold-out chose the epoch count, train again on all the data for that many epochs),
and the loop's ``keep`` (best validation epoch or last epoch)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ronghe import TextClassifier, config, load
from ronghe.training.callbacks import Callback

NET = {"max_length": 24, "batch_size": 8}


class Snapshots(Callback):
    """The head's weights at the end of every epoch."""

    def __init__(self):
        self.by_epoch = {}

    def on_epoch_end(self, loop, row):
        self.by_epoch[row["epoch"]] = _head(loop.model).clone()


def _head(model) -> torch.Tensor:
    return next(p for n, p in model.named_parameters() if "head" in n and n.endswith("weight")).detach()


@pytest.mark.parametrize("keep", ["best", "last"])
def test_keep_chooses_the_best_or_the_last_epoch(keep, sentiment_df):
    snaps = Snapshots()
    clf = TextClassifier(strategy="finetune", epochs=3, learning_rate=3e-4, **NET,
                         options={"keep": keep, "refit": "off", "patience": 3})
    clf.fit(sentiment_df, callbacks=[snaps])
    scores = [h["valid_macro_f1"] for h in clf.metrics_["history"]]
    best = 1 + int(np.argmax(scores))  # the first of equal scores, as the loop keeps it
    kept = clf.strategy_.best_epoch
    assert kept == (best if keep == "best" else 3)
    assert torch.equal(_head(clf.strategy_.model), snaps.by_epoch[kept])


def test_refit_trains_again_on_all_the_data_for_the_chosen_epochs(sentiment_df):
    first = TextClassifier(strategy="finetune", epochs=2, **NET, options={"refit": "off"})
    first.fit(sentiment_df)
    clf = TextClassifier(strategy="finetune", epochs=2, **NET, options={"refit": "on"})
    clf.fit(sentiment_df)
    refit = clf.metrics_["refit"]
    n = len(sentiment_df)
    assert refit["epochs"] == first.strategy_.best_epoch
    assert refit["examples"] == n == clf.data_["n_train"]
    assert first.data_["n_train"] < n and clf.data_["valid_seen_in_refit"]
    # the scores reported are the first run's on examples it had not seen
    assert clf.metrics_["valid"] == first.metrics_["valid"]
    history = clf.metrics_["history"]  # the first run's, on the held-out examples
    assert history == [{**h, "seconds": history[i]["seconds"]}
                       for i, h in enumerate(first.metrics_["history"])]
    assert [h["epoch"] for h in refit["history"]] == list(range(1, refit["epochs"] + 1))
    # the refit model is another model: it trained on the held-out examples too
    probe = list(sentiment_df.text[:6])
    assert not np.allclose(clf.predict_proba(probe), first.predict_proba(probe))


def test_refit_model_saves_and_loads(sentiment_df, tmp_path):
    clf = TextClassifier(strategy="finetune", epochs=1, **NET, options={"refit": "on"})
    clf.fit(sentiment_df).save(tmp_path / "m")
    back = load(tmp_path / "m")
    assert back.metrics_["refit"]["epochs"] == 1
    probe = list(sentiment_df.text[:4])
    np.testing.assert_allclose(back.predict_proba(probe), clf.predict_proba(probe), atol=1e-5)


def test_no_refit_with_given_validation_data_or_above_the_auto_limit(sentiment_split,
                                                                     sentiment_df, monkeypatch):
    train, valid = sentiment_split
    clf = TextClassifier(strategy="finetune", epochs=1, **NET, options={"refit": "on"})
    assert "refit" not in clf.fit(train, valid=valid).metrics_  # nothing was held out
    assert "refit" not in TextClassifier(strategy="finetune", epochs=1, **NET).fit(
        sentiment_df).metrics_  # off by default
    auto = {"refit": "auto"}
    monkeypatch.setattr(config, "REFIT_AUTO_MAX", len(sentiment_df))  # auto: not below the limit
    fitted = TextClassifier(strategy="finetune", epochs=1, **NET, options=auto).fit(sentiment_df)
    assert "refit" not in fitted.metrics_
    monkeypatch.setattr(config, "REFIT_AUTO_MAX", len(sentiment_df) + 1)
    fitted = TextClassifier(strategy="finetune", epochs=1, **NET, options=auto).fit(sentiment_df)
    assert fitted.metrics_["refit"]["examples"] == len(sentiment_df)


def test_refit_option_is_validated():
    with pytest.raises(Exception, match="refit"):
        TextClassifier(strategy="finetune", options={"refit": "sometimes"}).fit(
            ["a good film", "a bad film"] * 4, ["pos", "neg"] * 4)


@pytest.mark.parametrize("n, batch", [(48, 8), (1800, 8), (3999, 8), (4000, 16), (7999, 16),
                                      (8000, 32), (100_000, 32)])
def test_auto_batch_size_keeps_enough_steps_per_epoch(n, batch):
    assert config.auto_batch_size(n) == batch


def test_training_batch_follows_the_data_size_unless_given(sentiment_df):
    small = dict(max_length=24, epochs=1)
    assert TextClassifier(strategy="finetune", **small).fit(sentiment_df).config_.batch_size == 8
    assert TextClassifier(strategy="finetune", batch_size=16, **small).fit(
        sentiment_df).config_.batch_size == 16
    assert TextClassifier(strategy="finetune", options={"batch_size": 32}, **small).fit(
        sentiment_df).config_.batch_size == 32
