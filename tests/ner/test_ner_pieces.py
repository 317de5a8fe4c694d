"""Character-level data tokenised as running text (``pieces=text``): pieces that cover several
characters, one tag set per character slot, training, save/load and ONNX on the same path.

A tiny SentencePiece-style (Unigram + Metaspace) tokenizer trained on the Chinese sample stands
in for me5-small's: it merges frequent character runs (names, places) into one piece, which is
what makes the mode matter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ronghe.errors import ConfigError
from ronghe.ner import TokenClassifier, load, read
from ronghe.ner.subwords import SubwordWindows, char_level

DATA = Path(__file__).parents[1] / "data" / "ner"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def zh():
    return read(DATA / "zh_train.bmes"), read(DATA / "zh_test.bmes")


@pytest.fixture(scope="module")
def tiny_sp(zh, tmp_path_factory) -> str:
    """A random 2-layer encoder with a 400-piece Unigram tokenizer trained on the sample."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-sp")
    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    tok.train_from_iterator(["".join(s) for s in zh[0].tokens + zh[1].tokens],
                            trainers.UnigramTrainer(vocab_size=400, special_tokens=specials,
                                                    unk_token="<unk>"))
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>", pad_token="<pad>", cls_token="<s>",
                                   sep_token="</s>")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128,
                        pad_token_id=1)
    BertModel(config).save_pretrained(folder, safe_serialization=True)
    fast.save_pretrained(folder)
    return str(folder)


def test_char_level_is_detected_from_the_words(zh):
    assert char_level(zh[0].tokens)
    en = read(DATA / "en_train.conll")
    assert not char_level(en.tokens)
    assert not char_level([])


def test_running_text_pieces_cover_every_character_with_slots(zh, tiny_sp):
    from ronghe import backbones

    tok = backbones.load_tokenizer(Path(tiny_sp))
    win = SubwordWindows(tok, max_length=16, stride=5, pieces="text")
    shared = 0
    for words in zh[0].tokens:
        ids, first, slots = win.text_pieces(words)
        assert len(first) == len(slots) == len(words)
        assert first == sorted(first) and all(0 <= p < len(ids) for p in first)
        for j in range(len(words)):  # the slot counts the words before it in the same piece
            same = [k for k in range(j) if first[k] == first[j]]
            assert slots[j] == len(same)
        # the pieces spell the sentence: a word's characters lie in its piece (or the ones after)
        text = tok.convert_tokens_to_string(tok.convert_ids_to_tokens(ids)).replace(" ", "")
        assert text == "".join(words)
        shared += sum(s > 0 for s in slots)
    assert shared > 50  # the tokenizer merges characters, so slots are exercised
    long = [w for s in zh[0].tokens[:6] for w in s]  # several windows of 16 ids
    wins = win.windows([long])
    assert len(wins) > 2
    assert {j for w in wins for j in w.words} == set(range(len(long)))
    ids, first, slots = win.text_pieces(["\u200b", "北", "\u200b"])  # <unk> pieces here
    assert len(first) == 3 and all(0 <= p < len(ids) for p in first)


def test_pick_takes_each_words_own_slot():
    from ronghe.ner.subwords import Window

    w = Window(0, [0, 5, 2], [1, 1, 1], [0, 1, 2], [1.0, 1.0, 1.0], [0, 1, 5])
    rows = np.arange(3 * 2 * 3, dtype=float).reshape(3, 6)  # 2 slots of 3 tags
    picked = w.pick(rows, 3)
    assert picked.tolist() == [[0, 1, 2], [9, 10, 11], [15, 16, 17]]  # rank 5 -> last slot


def test_text_mode_learns_a_boundary_inside_a_piece_and_round_trips(zh, tiny_sp, tmp_path):
    """Trained long enough to fit its training sentences, a text-mode tagger reproduces entity
    starts that fall inside a piece - which labelling a piece by its first character cannot."""
    from ronghe.ner.onnx import as_onnx

    train, _ = zh
    sents = train.subset(range(24))
    clf = TokenClassifier(strategy="finetune", model=tiny_sp, epochs=40, learning_rate=3e-3,
                          batch_size=8, max_length=64, seed=0,
                          options={"head_learning_rate": 1e-2, "patience": 40}).fit(sents, sents)
    inner = clf.strategy_
    assert inner.report["pieces"]["mode"] == "text" and inner.slots > 1
    assert inner.model.head.out_features == len(inner.tags) * inner.slots
    wins = inner.windows.windows(sents.tokens)
    inside = [(w.sentence, j) for w in wins for j, s in zip(w.words, w.slots)
              if s > 0 and sents.tags[w.sentence][j] != "O"
              and sents.tags[w.sentence][j].startswith("B-")]
    pred = clf.predict_tags(sents.tokens)
    assert [len(p) for p in pred] == [len(t) for t in sents.tokens]
    assert inside  # the sample has entity starts in the middle of a piece ...
    hit = sum(pred[i][j] == sents.tags[i][j] for i, j in inside)
    assert hit >= 0.8 * len(inside)  # ... and the fitted tagger reproduces them
    assert clf.evaluate(sents)["f1"] > 0.9
    clf.save(tmp_path / "b")
    same = load(tmp_path / "b")
    assert same.strategy_.pieces == "text" and same.strategy_.slots == inner.slots
    assert same.predict_tags(sents.tokens) == pred
    onnx = as_onnx(clf)
    assert onnx.strategy_.config.pieces == "text"
    assert onnx.predict_tags(sents.tokens) == pred
    ems = [e for e in onnx.strategy_.sentence_emissions(sents.tokens[:4])]
    ref = inner.sentence_emissions(sents.tokens[:4])
    assert max(np.abs(a - b).max() for a, b in zip(ems, ref)) < 1e-3


def test_words_mode_is_kept_for_word_level_data_and_can_be_forced(zh, tiny_sp):
    train, _ = zh
    sents = train.subset(range(8))
    clf = TokenClassifier(strategy="finetune", model=tiny_sp, epochs=1, max_length=32, seed=0,
                          options={"pieces": "words"}).fit(sents, sents)
    assert clf.strategy_.report["pieces"] == {"mode": "words", "slots": 1}
    with pytest.raises(ConfigError, match="pieces"):
        SubwordWindows(clf.strategy_.tokenizer, 32, pieces="sentences")
