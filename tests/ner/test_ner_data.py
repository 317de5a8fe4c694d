"""NER data: readers, tag schemes and their conversion, invalid sequences, bad input, offsets."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from ronghe.errors import DataError
from ronghe.ner import data as nd

DATA = Path(__file__).parents[1] / "data" / "ner"


def write(tmp_path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def jsonl(tmp_path, records, name="d.jsonl") -> Path:
    return write(tmp_path, name, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


# --------------------------------------------------------------------------- CoNLL reader

def test_conll_columns_docstart_and_blank_lines(tmp_path):
    p = write(tmp_path, "a.conll", "-DOCSTART- -X- -X- O\n\n"
              "EU NNP B-NP B-ORG\nrejects VBZ B-VP O\nGerman JJ B-NP B-MISC\n\n\n"
              "Peter NNP B-NP B-PER\nBlackburn NNP I-NP I-PER\n\n"
              "-DOCSTART- -X- -X- O\nBRUSSELS NNP B-NP B-LOC\n")
    s = nd.read_conll(p)
    assert s.tokens == [["EU", "rejects", "German"], ["Peter", "Blackburn"], ["BRUSSELS"]]
    assert s.tags == [["B-ORG", "O", "B-MISC"], ["B-PER", "I-PER"], ["B-LOC"]]
    assert s.lines == [3, 8, 12]
    assert s.scheme == "iob2" and s.invalid == []
    assert s.types == ["LOC", "MISC", "ORG", "PER"]
    assert s.texts[1] == "Peter Blackburn" and s.offsets[1] == [(0, 5), (6, 15)]
    assert s.spans(1) == [{"start": 0, "end": 15, "label": "PER", "text": "Peter Blackburn"}]


def test_tab_separated_and_read_dispatch(tmp_path):
    p = write(tmp_path, "a.tsv", "New\tB-LOC\nYork\tI-LOC\n")
    assert nd.read(p).tags == [["B-LOC", "I-LOC"]]


def test_shipped_samples_read():
    zh = nd.read(DATA / "zh_train.bmes")
    assert zh.scheme == "bmes" and not zh.invalid and zh.types == ["LOC", "ORG", "PER"]
    assert all(len(t) == 1 for ts in zh.tokens for t in ts)  # character level
    en = nd.read(DATA / "en_train.conll")
    assert en.scheme == "iob2" and not en.invalid


# --------------------------------------------------------------------------- schemes

SPANS = [(0, 2, "PER"), (3, 4, "LOC"), (4, 5, "LOC"), (6, 9, "ORG")]
BIO = ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "O", "B-ORG", "I-ORG", "I-ORG"]
IN_SCHEME = {
    "iob1": ["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "O", "I-ORG", "I-ORG", "I-ORG"],
    "iob2": BIO,
    "bioes": ["B-PER", "E-PER", "O", "S-LOC", "S-LOC", "O", "B-ORG", "I-ORG", "E-ORG"],
    "bmes": ["B-PER", "E-PER", "O", "S-LOC", "S-LOC", "O", "B-ORG", "M-ORG", "E-ORG"],
}


@pytest.mark.parametrize("scheme", sorted(IN_SCHEME))
def test_each_scheme_converts_to_bio_and_is_detected(scheme):
    tags = IN_SCHEME[scheme]
    assert nd.detect_scheme([tags]) == scheme
    bio, bad = nd.to_bio(tags, scheme)
    assert bio == BIO and bad == []
    assert nd.bio_entities(bio) == SPANS
    s = nd.from_lists([list("abcdefghi")], [tags])  # auto
    assert s.scheme == scheme and s.tags == [BIO]
    assert nd.from_lists([list("abcdefghi")], [tags], scheme=scheme).tags == [BIO]


def test_scheme_aliases_and_unknown_scheme(tmp_path):
    assert nd.normalize_scheme("BIO") == "iob2" and nd.normalize_scheme("IOBES") == "bioes"
    p = write(tmp_path, "a.conll", "x B-PER\n")
    with pytest.raises(DataError, match="unknown tag scheme 'bilou'"):
        nd.read_conll(p, scheme="bilou")


def test_tag_outside_the_given_scheme_names_the_line(tmp_path):
    p = write(tmp_path, "a.conll", "a O\nb B-PER\nc E-PER\n")
    with pytest.raises(DataError, match=r"a\.conll:3: tag 'E-PER' is not in a known scheme \(IOB2\)"):
        nd.read_conll(p, scheme="bio")
    p = write(tmp_path, "b.conll", "a O\n\nb PERSON\n")
    with pytest.raises(DataError, match=r"b\.conll:3: tag 'PERSON'"):
        nd.read_conll(p)


# --------------------------------------------------------------------------- invalid sequences

def test_invalid_bio_is_reported_with_count_and_locations(tmp_path, caplog):
    p = write(tmp_path, "bad.conll", "a O\nb I-PER\nc O\n\nd B-LOC\ne I-ORG\n")
    with caplog.at_level(logging.WARNING, logger="ronghe"):
        s = nd.read_conll(p, scheme="iob2")
    assert [str(v) for v in s.invalid] == [
        f"{p}:2: 'I-PER' after 'a': an entity must begin with B-PER".replace("'a'", "'O'"),
        f"{p}:6: 'I-ORG' after 'B-LOC': an entity must begin with B-ORG"]
    assert "2 invalid IOB2 tag sequences in 2 sentences" in caplog.text
    assert f"{p}:2" in caplog.text and f"{p}:6" in caplog.text
    # kept as read (conlleval's reading), not repaired into something else silently
    assert s.tags == [["O", "B-PER", "O"], ["B-LOC", "B-ORG"]]
    assert any("invalid" in n for n in s.notes)


def test_invalid_sequences_can_be_refused(tmp_path):
    p = write(tmp_path, "bad.conll", "a O\nb I-PER\n")
    with pytest.raises(DataError, match=r"(?s)1 invalid IOB2 tag sequence .*bad\.conll:2: 'I-PER' after 'O'"):
        nd.read_conll(p, scheme="iob2", on_invalid="error")


def test_invalid_bioes_and_iob1():
    _, bad = nd.to_bio(["B-PER", "O", "E-LOC", "S-ORG", "B-ORG"], "bioes")
    assert [j for j, _ in bad] == [1, 2, 4]
    assert "not closed by E-PER" in bad[0][1] and "end of the sentence" in bad[-1][1]
    _, bad = nd.to_bio(["O", "B-PER"], "iob1")
    assert [j for j, _ in bad] == [1]


def test_invalid_in_memory_data_points_to_sentence_and_token():
    s = nd.from_lists([["a", "b"], ["c", "d"]], [["O", "O"], ["O", "I-X"]], scheme="bio")
    assert [v.where for v in s.invalid] == ["<list>: sentence 2, token 2"]


# --------------------------------------------------------------------------- bad input

def test_token_tag_count_mismatch_conll(tmp_path):
    p = write(tmp_path, "a.conll", "a O\nb B-PER\n\nc\nd O\n")
    with pytest.raises(DataError, match=r"a\.conll:4: token/tag count mismatch"):
        nd.read_conll(p)
    p = write(tmp_path, "b.conll", "lonely\n")
    with pytest.raises(DataError, match=r"b\.conll:1: the line has one column"):
        nd.read_conll(p)


def test_token_tag_count_mismatch_jsonl(tmp_path):
    p = jsonl(tmp_path, [{"tokens": ["a"], "tags": ["O"]}, {"tokens": ["a", "b"], "tags": ["O"]}])
    with pytest.raises(DataError, match=r"d\.jsonl:2: token/tag count mismatch: 2 tokens but 1 tags"):
        nd.read_jsonl(p)


def test_empty_sentences(tmp_path):
    p = jsonl(tmp_path, [{"text": "Hi Bob", "entities": []}, {"text": "  ", "entities": []}])
    with pytest.raises(DataError, match=r"d\.jsonl:2: empty sentence"):
        nd.read_jsonl(p)
    p = jsonl(tmp_path, [{"tokens": [], "tags": []}], "e.jsonl")
    with pytest.raises(DataError, match=r"e\.jsonl:1: empty sentence"):
        nd.read_jsonl(p)
    with pytest.raises(DataError, match="<list>: sentence 2: empty sentence"):
        nd.from_lists([["a"], []], [["O"], []])  # in-memory data: points to the sentence
    p = write(tmp_path, "x.conll", "-DOCSTART- O\n\n\n")
    with pytest.raises(DataError, match="no sentences"):
        nd.read_conll(p)


def test_overlapping_and_bad_spans(tmp_path):
    p = jsonl(tmp_path, [{"text": "New York City", "entities": [
        {"start": 0, "end": 8, "label": "LOC"}, {"start": 4, "end": 13, "label": "LOC"}]}])
    with pytest.raises(DataError, match=r"d\.jsonl:1: overlapping entities \[0, 8\) LOC 'New York'"):
        nd.read_jsonl(p)
    for ent, msg in [({"start": 3, "end": 99, "label": "X"}, "outside the text"),
                     ({"start": 2, "end": 3, "label": "X"}, "covers only whitespace"),
                     ({"start": 0, "end": 2, "label": ""}, "labels are non-empty"),
                     ({"start": "0", "end": 2, "label": "X"}, "non-integer offsets"),
                     ({"start": 0, "label": "X"}, "must have 'start', 'end' and 'label'")]:
        p = jsonl(tmp_path, [{"text": "ab cd", "entities": []}, {"text": "ab cd", "entities": [ent]}])
        with pytest.raises(DataError, match=r"d\.jsonl:2: .*" + msg):
            nd.read_jsonl(p)


def test_unreadable_json_and_missing_file(tmp_path):
    p = write(tmp_path, "d.jsonl", '{"text": "a", "entities": []}\n{oops\n')
    with pytest.raises(DataError, match=r"d\.jsonl:2: not valid JSON"):
        nd.read_jsonl(p)
    with pytest.raises(DataError, match="not found"):
        nd.read(tmp_path / "missing.conll")


# --------------------------------------------------------------------------- raw text and offsets

def test_tokenize_latin_and_cjk_offsets():
    text = "Dr. Wu met U.S. officials in 北京市, on 2024-05-01 (O'Neil's)."
    toks = nd.tokenize(text)
    assert [t for t, _, _ in toks] == ["Dr", ".", "Wu", "met", "U.S.", "officials", "in", "北",
                                       "京", "市", ",", "on", "2024-05-01", "(", "O'Neil", "'s", ")", "."]
    assert all(text[a:b] == t for t, a, b in toks)


def test_jsonl_spans_become_bio_with_original_offsets(tmp_path):
    recs = [{"text": "Obama's visit to New York.", "entities": [
                {"start": 0, "end": 5, "label": "PER"}, {"start": 17, "end": 25, "label": "LOC"}]},
            {"text": "张伟在北京工作。", "entities": [
                {"start": 0, "end": 2, "label": "PER"}, {"start": 3, "end": 5, "label": "LOC"}]},
            {"text": "Nothing here", "entities": []}]
    s = nd.read_jsonl(jsonl(tmp_path, recs))
    # token boundaries are cut at span boundaries ("Obama's" -> "Obama", "'s")
    assert s.tokens[0] == ["Obama", "'s", "visit", "to", "New", "York", "."]
    assert s.tags[0] == ["B-PER", "O", "O", "O", "B-LOC", "I-LOC", "O"]
    assert s.tokens[1] == list("张伟在北京工作。")
    assert s.tags[1] == ["B-PER", "I-PER", "O", "B-LOC", "I-LOC", "O", "O", "O"]
    for i, rec in enumerate(recs):
        assert [(e["start"], e["end"], e["label"]) for e in s.spans(i)] == \
            [(e["start"], e["end"], e["label"]) for e in rec["entities"]]
    assert s.lines == [1, 2, 3]


def test_join_tokens_keeps_cjk_together():
    text, offs = nd.join_tokens(["我", "在", "北", "京", "用", "Python", "3"])
    assert text == "我在北京用 Python 3"
    assert [text[a:b] for a, b in offs] == ["我", "在", "北", "京", "用", "Python", "3"]


def test_split_is_seeded():
    s = nd.read(DATA / "en_train.conll")
    a1, b1 = nd.split(s, 0.25, seed=3)
    a2, b2 = nd.split(s, 0.25, seed=3)
    assert a1.tokens == a2.tokens and b1.tokens == b2.tokens
    assert len(a1) + len(b1) == len(s) and len(b1) == round(0.25 * len(s))
