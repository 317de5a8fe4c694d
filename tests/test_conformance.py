"""Conformance: every registered task x every strategy it registers goes through one contract -
fit returns the fitted estimator, predict / predict_records / evaluate work on the task's inputs,
save + load give the same estimator with identical predictions, get_params / clone follow
scikit-learn. A strategy registered without an entry in ``FIT`` fails here, so a new task or
strategy cannot slip in unchecked. Network strategies run on a tiny BERT (the learning itself is
tested per task: tests/strategies/, tests/ner/)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone

import ronghe
from ronghe import strategies, tasks

NER_DATA = Path(__file__).parent / "data" / "ner"
TINY = "<tiny>"  # replaced by the tiny BERT's folder
TINY_VISION = "<tiny-vision>"  # replaced by the tiny timm network's folder
NET = {"model": TINY, "epochs": 1, "max_length": 32}
# task -> strategy -> estimator kwargs for a fast fit, or "export"/"bundles" for strategies that
# are built from fitted models rather than fitted
FIT = {
    "text-classification": {
        "classic": {}, "frozen": {"model": TINY}, "finetune": NET, "lora": NET, "adalora": {**NET, "epochs": 2, "batch_size": 8},
        "ia3": NET, "prefix": NET,
        "contrastive": {**NET, "options": {"num_iterations": 2}},
        "weighted": {"options": {"model": TINY, "member_options": {"finetune": NET}}},
        "concat": {"model": TINY}, "stack": {"options": {"model": TINY, "folds": 2}},
        "vote": "bundles", "onnx": "export"},
    "token-classification": {
        "classic": {}, "finetune": {**NET, "crf": True}, "lora": NET, "onnx": "export"},
    "image-classification": {"classic": {}, "frozen": {"model": TINY_VISION},
                             "finetune": {"model": TINY_VISION, "epochs": 1}, "onnx": "export",
                             "lora": {"model": TINY_VISION, "epochs": 1},
                             "concat": {"model": TINY_VISION},
                             "weighted": {"options": {"model": TINY_VISION, "member_options": {
                                 "finetune": {"epochs": 1}}}},
                             "stack": {"options": {"model": TINY_VISION, "folds": 2}},
                             "vote": "bundles"},
}
INPUTS = {"text-classification": ["a wonderful film, i loved it", "boring and awful", "", "ok"],
          "token-classification": ["Angela Merkel flew to Vienna .", "", "Nothing here"],
          "image-classification": None}  # test images, made by task_data
CASES = [(t.name, s) for t in tasks.all_tasks() for s in t.strategies]


def test_every_registered_strategy_is_covered():
    missing = [c for c in CASES if c[1] not in FIT.get(c[0], {})]
    assert not missing, f"add these task/strategy pairs to FIT: {missing}"


@pytest.fixture(scope="module")
def task_data(tmp_path_factory):
    from makers import make_shapes, make_sentiment

    root = tmp_path_factory.mktemp("shapes")
    images = (ronghe.images.data.read(make_shapes(root / "train", 8, 0)),
              ronghe.images.data.read(make_shapes(root / "test", 3, 1)))
    INPUTS["image-classification"] = images[1].paths[:3]
    return {"text-classification": (make_sentiment(16, 0), make_sentiment(6, 1)),
            "token-classification": (ronghe.ner.read(NER_DATA / "en_train.conll"),
                                     ronghe.ner.read(NER_DATA / "en_test.conll")),
            "image-classification": images}


def _kwargs(spec, tiny, tiny_vision=None):
    def swap(v):
        if v == TINY_VISION:
            return tiny_vision
        if v == TINY:
            return tiny
        if isinstance(v, dict):
            return {k: swap(x) for k, x in v.items()}
        return v
    return swap(spec)


@pytest.fixture(scope="module")
def fitted(task_data, tiny_bert, tiny_vision, tmp_path_factory):
    cache: dict = {}

    def get(task: str, name: str):
        if (task, name) in cache:
            return cache[(task, name)]
        est_cls = tasks.get(task).estimator_class()
        train, valid = task_data[task]
        how = FIT[task][name]
        if how == "export":
            from ronghe.compression.export import export

            clf = export(get(task, "finetune"), format="onnx", inputs=INPUTS[task])
        elif how == "bundles":
            root = tmp_path_factory.mktemp("vote")
            paths = [str(get(task, m).save(root / m)) for m in ("classic", "frozen")]
            clf = est_cls(strategy=name, options={"bundles": paths}).fit(train, valid)
        else:
            clf = est_cls(strategy=name, **_kwargs(how, tiny_bert, tiny_vision))
            assert clf.fit(train, valid) is clf
        cache[(task, name)] = clf
        return clf

    return get


def _same_predictions(a, b, inputs, task):
    if task in ("text-classification", "image-classification"):
        np.testing.assert_array_equal(a.predict_proba(inputs), b.predict_proba(inputs))
    else:
        assert a.predict(inputs) == b.predict(inputs)


@pytest.mark.parametrize("task,name", CASES)
def test_strategy_contract(fitted, task_data, task, name, tmp_path):
    spec = tasks.get(task)
    clf = fitted(task, name)
    inputs = INPUTS[task]
    # fitted state, named the same for every task
    assert isinstance(clf, spec.estimator_class()) and clf.task == task
    assert clf.strategy_.name == name and clf.strategy_.task == task
    assert len(clf.classes_) >= 2
    assert spec.score in clf.metrics_["valid"]
    # prediction
    pred = clf.predict(inputs)
    assert len(pred) == len(inputs)
    records = clf.predict_records(inputs)
    assert len(records) == len(inputs) and all(isinstance(r, dict) for r in records)
    report = clf.evaluate(task_data[task][1])
    assert 0.0 <= report[spec.score] <= 1.0
    # save / load: same estimator, same predictions, no pickle
    path = clf.save(tmp_path / "b")
    assert not [p for p in path.rglob("*") if p.suffix in (".pkl", ".pickle", ".bin", ".pt")]
    again = ronghe.load(path)
    assert type(again) is type(clf) and again.strategy == clf.strategy
    assert list(again.classes_) == list(clf.classes_)
    assert again.get_params() == {k: str(v) if isinstance(v, Path) else v
                                  for k, v in clf.get_params().items()}
    _same_predictions(clf, again, inputs, task)
    # scikit-learn: clone is unfitted with the same parameters
    twin = clone(clf)
    assert twin.get_params() == clf.get_params() and not hasattr(twin, "strategy_")


@pytest.mark.parametrize("task", [t.name for t in tasks.all_tasks()])
def test_task_declaration_is_complete(task):
    spec = tasks.get(task)
    assert tasks.get(spec.cli_name) is spec
    est_cls = spec.estimator_class()
    assert est_cls.task == task
    assert spec.default_strategy in spec.strategies
    assert set(spec.portfolio) <= set(spec.strategies)
    for name in spec.strategies:
        assert strategies.get(name, task).task == task
