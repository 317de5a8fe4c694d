"""NER data: CoNLL column files, JSON lines with character spans, tag schemes, tokenisation.

Everything is read into ``Sentences``: tokens per sentence, their tags in one internal scheme
(BIO, a.k.a. IOB2), character offsets of each token in the original text when there is one, and
where each sentence came from (file and line), so that every message can point into the file.

* CoNLL columns (``read_conll``): one token per line, the token in the first column and the tag in
  the last (whitespace- or tab-separated); blank lines end a sentence; ``-DOCSTART-`` lines are
  document separators and are skipped.
* JSON lines (``read_jsonl``): ``{"text": ..., "entities": [{"start": 0, "end": 5, "label":
  "PER"}]}`` (raw text + character spans; the text is tokenised by ``tokenize`` and token
  boundaries are cut at every span boundary) or ``{"tokens": [...], "tags": [...]}``.
* Tag schemes: IOB1, IOB2/BIO, BIOES (IOBES) and BMES, given or detected (``scheme="auto"``), and
  converted to BIO. A sequence that breaks the scheme's rules (an ``I-PER`` after ``O`` in BIO, a
  ``B-`` without its ``E-`` in BIOES ...) is never silently repaired: the reader counts them and
  lists where they are (``file:line``) in a warning and in ``Sentences.invalid``; with
  ``on_invalid="error"`` it refuses the file instead. (When converting, such a tag is read the way
  conlleval/seqeval read it: an entity begins wherever the type changes or an entity is not open.)
* Tokenisation of raw text (``tokenize``): runs of letters/digits (with inner ``'``/``-``) and
  single punctuation marks for Latin and other space-separated scripts, one token per character for
  CJK (Chinese characters, kana), so Chinese NER works character by character.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import log
from ..errors import DataError

SCHEMES = ("iob1", "iob2", "bioes", "bmes")
SCHEME_ALIASES = {"bio": "iob2", "iob": "iob2", "iob2": "iob2", "iob1": "iob1", "bioes": "bioes",
                  "iobes": "bioes", "bmes": "bmes", "bmeso": "bmes", "bmeo": "bmes"}
_PREFIXES = {"iob1": "BI", "iob2": "BI", "bioes": "BIES", "bmes": "BMES"}
_MAX_LISTED = 10  # locations shown in one message
DOCSTART = "-DOCSTART-"
JSONL_EXTENSIONS = (".jsonl", ".ndjson", ".json")


# =========================================================================== the data set

@dataclass
class Sentences:
    """Tokenised sentences with BIO tags (or ``None`` for unlabelled data) and provenance.

    ``offsets[i][j]`` is the ``(start, end)`` character span of token ``j`` of sentence ``i`` in
    ``texts[i]``; for pre-tokenised input without an original text, ``texts[i]`` is the tokens
    joined by ``join_tokens`` and the offsets point into that. ``lines[i]`` is the 1-based line in
    ``source`` where sentence ``i`` starts (its first token for CoNLL files, its record for JSON
    lines; ``0`` for data made in memory), ``token_lines`` says whether token ``j`` sits on line
    ``lines[i] + j`` (CoNLL). ``scheme`` is the scheme the tags came in; ``invalid`` lists the
    sequences that broke it (``Invalid``), ``notes`` what was found and done.
    """

    tokens: list[list[str]]
    tags: list[list[str]] | None
    offsets: list[list[tuple[int, int]]]
    texts: list[str]
    source: str = "<list>"
    lines: list[int] = field(default_factory=list)
    token_lines: bool = False
    scheme: str = "iob2"
    invalid: list["Invalid"] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.tokens)

    def subset(self, idx) -> "Sentences":
        idx = [int(i) for i in np.asarray(idx, dtype=int).reshape(-1)]
        new = {old: k for k, old in enumerate(idx)}
        return Sentences(
            tokens=[self.tokens[i] for i in idx],
            tags=None if self.tags is None else [self.tags[i] for i in idx],
            offsets=[self.offsets[i] for i in idx], texts=[self.texts[i] for i in idx],
            source=self.source, lines=[self.lines[i] for i in idx], token_lines=self.token_lines,
            scheme=self.scheme, invalid=[Invalid(new[v.sentence], v.token, v.where, v.message)
                                         for v in self.invalid if v.sentence in new],
            notes=list(self.notes))

    def where(self, i: int, j: int | None = None) -> str:
        """``file:line`` of sentence ``i`` (token ``j``), or a position for in-memory data."""
        if self.lines and self.lines[i]:
            line = self.lines[i] + (j if (j is not None and self.token_lines) else 0)
            return f"{self.source}:{line}" + ("" if self.token_lines or j is None
                                               else f" (token {j + 1})")
        return f"{self.source}: sentence {i + 1}" + ("" if j is None else f", token {j + 1}")

    @property
    def types(self) -> list[str]:
        """Sorted entity types found in the tags."""
        if self.tags is None:
            raise DataError(f"{self.source} has no tags: training and evaluation need tagged "
                            "sentences (CoNLL: a tag column; JSON lines: 'entities' or 'tags').")
        return sorted({t[2:] for ts in self.tags for t in ts if t != "O"})

    def spans(self, i: int) -> list[dict]:
        """Entities of sentence ``i`` as character spans in ``texts[i]`` (needs tags)."""
        return [{"start": self.offsets[i][a][0], "end": self.offsets[i][b - 1][1], "label": lab,
                 "text": self.texts[i][self.offsets[i][a][0]:self.offsets[i][b - 1][1]]}
                for a, b, lab in bio_entities(self.tags[i])]

    def fingerprint(self) -> str:
        payload = json.dumps({"tokens": self.tokens, "tags": self.tags}, ensure_ascii=False,
                             separators=(",", ":"))
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def n_entities(self) -> int:
        return 0 if self.tags is None else sum(len(bio_entities(t)) for t in self.tags)


@dataclass
class Invalid:
    """One tag that breaks its scheme's rules."""

    sentence: int
    token: int
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


# =========================================================================== tokenising raw text

_CJK = ("\u2e80-\u2fdf\u3005-\u3007\u3021-\u3029\u3038-\u303b\u3040-\u30ff\u3190-\u319f"
        "\u31c0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f")
_LETTER = rf"(?:[^\W_{_CJK}]|[\u0300-\u036f])"  # a letter or digit (not CJK), or a combining mark
_CLITIC = r"['\u2019](?:s|S|re|ve|ll|d|m|t)\b"   # 's 're 've 'll 'd 'm 't split off, as in CoNLL
_TOKEN = re.compile(
    rf"[{_CJK}]"                                     # one CJK character
    r"|\b(?:[A-Za-z]\.){2,}"                         # abbreviations: U.S., e.g.
    rf"|{_LETTER}+(?:(?:-|['\u2019](?!(?:s|S|re|ve|ll|d|m|t)\b)){_LETTER}+)*"  # words, O'Neil
    rf"|{_CLITIC}"
    r"|\S")                                          # any other visible character


def tokenize(text: str) -> list[tuple[str, int, int]]:
    """Split raw text into ``(token, start, end)``: words and single punctuation marks for
    space-separated scripts, one token per character for Chinese/Japanese characters.

    >>> [t for t, _, _ in tokenize("Dr. Wu went to 北京 in 2024-05.")]
    ['Dr', '.', 'Wu', 'went', 'to', '北', '京', 'in', '2024-05', '.']
    """
    return [(m.group(), m.start(), m.end()) for m in _TOKEN.finditer(text) if m.group()]


def is_cjk(token: str) -> bool:
    return bool(token) and all(re.fullmatch(f"[{_CJK}]", ch) for ch in token)


def join_tokens(tokens: list[str]) -> tuple[str, list[tuple[int, int]]]:
    """A text for pre-tokenised input and each token's offsets in it: tokens joined by one space,
    except between two CJK tokens (so a list of Chinese characters reads as the sentence)."""
    parts, offsets, pos = [], [], 0
    for j, tok in enumerate(tokens):
        if j and not (is_cjk(tokens[j - 1]) and is_cjk(tok)):
            parts.append(" ")
            pos += 1
        offsets.append((pos, pos + len(tok)))
        parts.append(tok)
        pos += len(tok)
    return "".join(parts), offsets


# =========================================================================== tag schemes

def _split_tag(tag: str) -> tuple[str, str]:
    """``'B-PER'`` -> ``('B', 'PER')``; ``'O'`` -> ``('O', '')``; also ``B_PER``."""
    if tag == "O":
        return "O", ""
    if len(tag) > 2 and tag[1] in "-_" and tag[0] in "BIESM":
        return tag[0], tag[2:]
    return "?", tag


def _tag_error(tag: str, where: str, scheme: str | None) -> DataError:
    allowed = "B-, I-, E-, S-, M-" if scheme is None else ", ".join(f"{p}-" for p in _PREFIXES[scheme])
    return DataError(f"{where}: tag {tag!r} is not in a known scheme"
                     + (f" ({scheme.upper()})" if scheme else "")
                     + f"; tags are 'O' or a prefix ({allowed}) and a type, e.g. 'B-PER'. "
                     "Fix the tag, or give the right scheme (--scheme iob1|iob2|bioes|bmes).")


def normalize_scheme(scheme: str | None) -> str:
    s = (scheme or "auto").lower().replace("-", "").replace("_", "")
    if s == "auto":
        return "auto"
    if s not in SCHEME_ALIASES:
        raise DataError(f"unknown tag scheme {scheme!r}; use one of: auto, iob1, iob2 (bio), "
                        "bioes (iobes), bmes")
    return SCHEME_ALIASES[s]


def detect_scheme(tags: list[list[str]]) -> str:
    """The scheme the tags are in: BMES if any ``M-``, BIOES if any ``E-``/``S-``, else IOB1 when
    entities mostly start with ``I-`` (``B-`` only between two adjacent same-type entities), else
    IOB2. Tags that fit no scheme are left for ``to_bio`` to report."""
    prefixes = {_split_tag(t)[0] for ts in tags for t in ts}
    if "M" in prefixes:
        return "bmes"
    if prefixes & {"E", "S"}:
        return "bioes"
    i_starts = b_starts = 0
    for ts in tags:
        prev = ("O", "")
        for t in ts:
            p, typ = _split_tag(t)
            opened_before = prev[0] in "BI" and prev[1] == typ
            if p == "I" and not opened_before:
                i_starts += 1
            elif p == "B" and not opened_before:
                b_starts += 1
            prev = (p, typ)
    return "iob1" if i_starts > b_starts else "iob2"


def to_bio(tags: list[str], scheme: str) -> tuple[list[str], list[tuple[int, str]]]:
    """Convert one sentence's tags from ``scheme`` to BIO; also return ``(token, message)`` for
    each tag that breaks the scheme's rules. Raises ``ValueError(token)`` for an unknown tag."""
    allowed = _PREFIXES[scheme]
    out: list[str] = []
    bad: list[tuple[int, str]] = []
    cur = ""  # type of the open entity, "" when none is open
    prev_tag = "start of sentence"
    for j, tag in enumerate(tags):
        p, typ = _split_tag(tag)
        if p == "?" or (p != "O" and p not in allowed):
            raise ValueError(j)
        cont = cur == typ and cur != ""
        if p == "O":
            if scheme in ("bioes", "bmes") and cur:
                bad.append((j, f"entity {cur} not closed by E-{cur} before 'O' ({prev_tag} -> O)"))
            out.append("O")
            cur = ""
        elif p == "B":
            if scheme == "iob1" and not cont:
                bad.append((j, f"'{tag}' after {prev_tag}: in IOB1 B- only separates two "
                               f"adjacent {typ} entities"))
            if scheme in ("bioes", "bmes") and cur:
                bad.append((j, f"entity {cur} not closed by E-{cur} before '{tag}'"))
            out.append(f"B-{typ}")
            cur = typ
        elif p in "IM":
            if scheme in ("iob1",):
                out.append(f"I-{typ}" if cont else f"B-{typ}")
            else:
                if not cont:
                    bad.append((j, f"'{tag}' after {prev_tag}: an entity must begin with B-{typ}"))
                    if cur and scheme in ("bioes", "bmes"):
                        bad.append((j, f"entity {cur} not closed by E-{cur} before '{tag}'"))
                out.append(f"I-{typ}" if cont else f"B-{typ}")
            cur = typ
        elif p == "E":
            if not cont:
                bad.append((j, f"'{tag}' after {prev_tag}: an entity must begin with B-{typ}"))
                if cur:
                    bad.append((j, f"entity {cur} not closed by E-{cur} before '{tag}'"))
            out.append(f"I-{typ}" if cont else f"B-{typ}")
            cur = ""
        else:  # S
            if cur:
                bad.append((j, f"entity {cur} not closed by E-{cur} before '{tag}'"))
            out.append(f"B-{typ}")
            cur = ""
        prev_tag = f"'{tag}'"
    if scheme in ("bioes", "bmes") and cur:
        bad.append((len(tags) - 1, f"entity {cur} not closed by E-{cur} at the end of the sentence"))
    return out, bad


def bio_entities(tags: list[str]) -> list[tuple[int, int, str]]:
    """``(start, end, type)`` token ranges (end exclusive) of BIO tags; an ``I-X`` that does not
    continue an ``X`` entity starts one (conlleval's reading)."""
    out, start, cur = [], 0, ""
    for j, tag in enumerate(list(tags) + ["O"]):
        p, typ = _split_tag(tag)
        if cur and not (p == "I" and typ == cur):
            out.append((start, j, cur))
            cur = ""
        if p in "BI" and not cur and p != "O" and typ:
            start, cur = j, typ
    return out


def entities_to_bio(n: int, entities: list[tuple[int, int, str]]) -> list[str]:
    tags = ["O"] * n
    for a, b, typ in entities:
        tags[a] = f"B-{typ}"
        for j in range(a + 1, b):
            tags[j] = f"I-{typ}"
    return tags


def _convert(sents: Sentences, raw_tags: list[list[str]], scheme: str, on_invalid: str) -> None:
    """Fill ``sents.tags`` (BIO) from ``raw_tags`` in ``scheme`` (or detected); report invalid."""
    scheme = normalize_scheme(scheme)
    if scheme == "auto":
        scheme = detect_scheme(raw_tags)
        sents.notes.append(f"{sents.source}: tag scheme detected as {scheme.upper()}")
    sents.scheme = scheme
    tags, invalid = [], []
    for i, ts in enumerate(raw_tags):
        try:
            bio, bad = to_bio(ts, scheme)
        except ValueError as e:
            j = e.args[0]
            raise _tag_error(ts[j], sents.where(i, j), scheme) from None
        tags.append(bio)
        invalid += [Invalid(i, j, sents.where(i, j), msg) for j, msg in bad]
    sents.tags = tags
    sents.invalid = invalid
    if invalid:
        shown = "\n  ".join(str(v) for v in invalid[:_MAX_LISTED])
        more = f"\n  ... and {len(invalid) - _MAX_LISTED} more" if len(invalid) > _MAX_LISTED else ""
        n_sent = len({v.sentence for v in invalid})
        msg = (f"{sents.source}: {len(invalid)} invalid {scheme.upper()} tag sequence"
               f"{'s' if len(invalid) > 1 else ''} in {n_sent} sentence{'s' if n_sent > 1 else ''}:"
               f"\n  {shown}{more}")
        if on_invalid == "error":
            raise DataError(msg + "\nFix these tags, or read the file with on_invalid='warn' "
                                  "(each such tag then begins an entity, as conlleval reads it).")
        note = msg + "\n(kept as read: each such tag begins an entity, as conlleval reads it)"
        log.warn("%s", note)
        sents.notes.append(note)


# =========================================================================== readers

def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig")
    return open(path, encoding="utf-8-sig")


def _check_path(path) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"NER data file not found: {p}")
    if p.is_dir():
        raise DataError(f"{p} is a folder; give a CoNLL column file or a .jsonl file")
    return p


def _check_on_invalid(on_invalid: str) -> None:
    if on_invalid not in ("warn", "error"):
        raise DataError(f"on_invalid must be 'warn' or 'error', got {on_invalid!r}")


def read_conll(path, scheme: str = "auto", *, require_tags: bool = True,
               on_invalid: str = "warn") -> Sentences:
    """Read a CoNLL-style column file: token first, tag last; blank lines end sentences;
    ``-DOCSTART-`` lines are skipped. With ``require_tags=False`` a file of tokens only (one
    column) is read as unlabelled."""
    _check_on_invalid(on_invalid)
    scheme = normalize_scheme(scheme)
    p = _check_path(path)
    source = str(path)
    tokens, raw, lines = [], [], []
    cur_tok: list[str] = []
    cur_tag: list[str] = []
    start = 0
    labelled: bool | None = None
    first_line_cols: tuple[int, int] | None = None

    def flush():
        if cur_tok:
            tokens.append(list(cur_tok))
            raw.append(list(cur_tag))
            lines.append(start)
        cur_tok.clear()
        cur_tag.clear()

    try:
        with _open_text(p) as fh:
            for n, line in enumerate(fh, 1):
                cols = line.split()
                if not cols:
                    flush()
                    continue
                if cols[0] == DOCSTART:
                    flush()
                    continue
                has_tag = len(cols) >= 2
                if labelled is None:
                    labelled, first_line_cols = has_tag, (n, len(cols))
                    if not has_tag and require_tags:
                        raise DataError(
                            f"{source}:{n}: the line has one column ({line.strip()!r}); a CoNLL "
                            "file needs the token in the first column and its tag in the last. "
                            "Add the tag column, or check the separator.")
                elif has_tag != labelled:
                    raise DataError(
                        f"{source}:{n}: token/tag count mismatch: this line has {len(cols)} "
                        f"column{'s' if len(cols) > 1 else ''} but line {first_line_cols[0]} has "
                        f"{first_line_cols[1]}; every token line needs its tag in the last column.")
                if not cur_tok:
                    start = n
                cur_tok.append(cols[0])
                cur_tag.append(cols[-1] if has_tag else "O")
            flush()
    except UnicodeDecodeError as e:
        raise DataError(f"{source} is not UTF-8 text ({e}); save it as UTF-8") from None
    except OSError as e:
        raise DataError(f"cannot read {source}: {e}") from None
    if not tokens:
        raise DataError(f"{source} holds no sentences (only blank or -DOCSTART- lines)")
    texts, offsets = zip(*(join_tokens(t) for t in tokens))
    sents = Sentences(tokens=tokens, tags=None, offsets=list(offsets), texts=list(texts),
                      source=source, lines=lines, token_lines=True)
    if labelled:
        _convert(sents, raw, scheme, on_invalid)
    sents.notes.append(f"read {len(sents)} sentences, {sum(map(len, tokens))} tokens from {source}")
    return sents


def _span_tokens(text: str, cuts: set[int]) -> list[tuple[str, int, int]]:
    """``tokenize(text)`` with tokens also cut at every position in ``cuts``."""
    out = []
    for tok, a, b in tokenize(text):
        inner = sorted(c for c in cuts if a < c < b)
        for x, y in zip([a] + inner, inner + [b]):
            out.append((text[x:y], x, y))
    return out


def _record_spans(rec: dict, text: str, where: str) -> list[tuple[int, int, str]]:
    ents = rec.get("entities", rec.get("spans", rec.get("labels")))
    if ents is None:
        return []
    if not isinstance(ents, list):
        raise DataError(f"{where}: 'entities' must be a list of {{start, end, label}} objects")
    spans = []
    for k, e in enumerate(ents):
        if isinstance(e, (list, tuple)) and len(e) == 3:  # [start, end, label] (doccano)
            e = {"start": e[0], "end": e[1], "label": e[2]}
        if not isinstance(e, dict) or not {"start", "end", "label"} <= set(e):
            raise DataError(f"{where}: entity {k + 1} must have 'start', 'end' and 'label', got {e!r}")
        a, b, lab = e["start"], e["end"], e["label"]
        if not (isinstance(a, int) and isinstance(b, int)) or isinstance(a, bool) or isinstance(b, bool):
            raise DataError(f"{where}: entity {k + 1} has non-integer offsets start={a!r}, end={b!r}")
        if not isinstance(lab, str) or not lab.strip() or re.search(r"\s", lab):
            raise DataError(f"{where}: entity {k + 1} has label {lab!r}; labels are non-empty "
                            "strings without spaces, e.g. 'PER'")
        if not 0 <= a < b <= len(text):
            raise DataError(f"{where}: entity {k + 1} [{a}, {b}) is outside the text (length "
                            f"{len(text)}) or empty; offsets are 0-based characters, end exclusive")
        if not text[a:b].strip():
            raise DataError(f"{where}: entity {k + 1} [{a}, {b}) covers only whitespace")
        spans.append((a, b, lab))
    spans.sort()
    for (a1, b1, l1), (a2, b2, l2) in zip(spans, spans[1:]):
        if a2 < b1:
            raise DataError(f"{where}: overlapping entities [{a1}, {b1}) {l1} {text[a1:b1]!r} and "
                            f"[{a2}, {b2}) {l2} {text[a2:b2]!r}; flat NER needs non-overlapping "
                            "spans. Keep one of them.")
    return spans


def read_jsonl(path, scheme: str = "auto", *, require_tags: bool = True,
               on_invalid: str = "warn") -> Sentences:
    """Read JSON lines: ``{"text", "entities": [{"start", "end", "label"}]}`` records (character
    offsets, end exclusive) or ``{"tokens", "tags"}`` records (tags in ``scheme``)."""
    _check_on_invalid(on_invalid)
    p = _check_path(path)
    source = str(path)
    records: list[tuple[int, dict]] = []
    try:
        with _open_text(p) as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as e:
                    raise DataError(f"{source}:{n}: not valid JSON ({e.msg}); each line must be "
                                    "one JSON object") from None
                if isinstance(rec, str):
                    rec = {"text": rec}
                if not isinstance(rec, dict):
                    raise DataError(f"{source}:{n}: each line must be a JSON object with 'text' "
                                    "(+ 'entities') or 'tokens' (+ 'tags')")
                records.append((n, rec))
    except UnicodeDecodeError as e:
        raise DataError(f"{source} is not UTF-8 text ({e}); save it as UTF-8") from None
    if not records:
        raise DataError(f"{source} holds no records")
    return from_records([r for _, r in records], scheme, require_tags=require_tags,
                        on_invalid=on_invalid, source=source, lines=[n for n, _ in records])


def from_records(records: list[dict], scheme: str = "auto", *, require_tags: bool = True,
                 on_invalid: str = "warn", source: str = "<records>",
                 lines: list[int] | None = None, unit: str = "record") -> Sentences:
    """Sentences from dicts shaped like JSON-lines records (see ``read_jsonl``)."""
    _check_on_invalid(on_invalid)
    lines = lines or [0] * len(records)
    tokens, raw, offsets, texts = [], [], [], []
    kinds = set()
    has_tags: bool | None = None
    for k, (rec, n) in enumerate(zip(records, lines)):
        where = f"{source}:{n}" if n else f"{source}: {unit} {k + 1}"
        if not isinstance(rec, dict):
            raise DataError(f"{where}: expected an object with 'text' or 'tokens', got "
                            f"{type(rec).__name__}")
        if "tokens" in rec:
            toks = rec["tokens"]
            if not isinstance(toks, list) or not all(isinstance(t, str) for t in toks):
                raise DataError(f"{where}: 'tokens' must be a list of strings")
            if not toks:
                raise DataError(f"{where}: empty sentence (no tokens); remove the record")
            empty = [j for j, t in enumerate(toks) if not t.strip()]
            if empty:
                raise DataError(f"{where}: token {empty[0] + 1} is empty or whitespace")
            tags = rec.get("tags", rec.get("ner_tags"))
            if tags is not None:
                if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                    raise DataError(f"{where}: 'tags' must be a list of tag strings like 'B-PER'")
                if len(tags) != len(toks):
                    raise DataError(f"{where}: token/tag count mismatch: {len(toks)} tokens but "
                                    f"{len(tags)} tags")
            text = rec.get("text")
            if isinstance(text, str):
                offs, pos = [], 0
                for j, t in enumerate(toks):
                    a = text.find(t, pos)
                    if a < 0:
                        raise DataError(f"{where}: token {j + 1} {t!r} is not found in 'text' "
                                        "after the previous token; drop 'text' or fix the tokens")
                    offs.append((a, a + len(t)))
                    pos = a + len(t)
            else:
                text, offs = join_tokens(toks)
            kinds.add("tokens")
            labelled = tags is not None
            tags = tags if labelled else ["O"] * len(toks)
        elif "text" in rec:
            text = rec["text"]
            if not isinstance(text, str):
                raise DataError(f"{where}: 'text' must be a string, got {type(text).__name__}")
            if not text.strip():
                raise DataError(f"{where}: empty sentence (the text is empty); remove the record")
            labelled = any(k_ in rec for k_ in ("entities", "spans", "labels"))
            spans = _record_spans(rec, text, where)
            cuts = {c for a, b, _ in spans for c in (a, b)}
            toks3 = _span_tokens(text, cuts)
            toks = [t for t, _, _ in toks3]
            offs = [(a, b) for _, a, b in toks3]
            ents = []
            for a, b, lab in spans:
                inside = [j for j, (x, y) in enumerate(offs) if x >= a and y <= b]
                if not inside:
                    raise DataError(f"{where}: entity [{a}, {b}) {text[a:b]!r} covers no token")
                ents.append((inside[0], inside[-1] + 1, lab))
            tags = entities_to_bio(len(toks), ents)
            kinds.add("text")
        else:
            raise DataError(f"{where}: a record needs 'text' (with 'entities') or 'tokens' (with "
                            f"'tags'); found keys {sorted(rec)}")
        if has_tags is None:
            has_tags = labelled
        elif labelled != has_tags and require_tags:
            raise DataError(f"{where}: this record has {'' if labelled else 'no '}'entities'/'tags' "
                            f"but the first one has {'' if has_tags else 'none'}; give entities (an "
                            "empty list for none) or tags for every record")
        if len(kinds) > 1:
            raise DataError(f"{where}: records mix the 'text' + 'entities' and the 'tokens' + "
                            "'tags' forms; use one form per file")
        tokens.append(toks)
        raw.append(tags)
        offsets.append(offs)
        texts.append(text)
    if require_tags and not has_tags:
        raise DataError(f"{source}: no record has 'entities' or 'tags'; training and evaluation "
                        "need them ('entities': [] for a sentence without entities)")
    sents = Sentences(tokens=tokens, tags=None, offsets=offsets, texts=texts, source=source,
                      lines=list(lines))
    if has_tags:
        # spans were turned into BIO directly; token records carry tags in ``scheme``
        _convert(sents, raw, scheme if "tokens" in kinds else "iob2", on_invalid)
    sents.notes.append(f"read {len(sents)} sentences, {sum(map(len, tokens))} tokens from {source}")
    return sents


def from_lists(tokens: list[list[str]], tags: list[list[str]] | None = None,
               scheme: str = "auto", *, on_invalid: str = "warn",
               source: str = "<list>") -> Sentences:
    """Sentences from pre-tokenised input (and tags in ``scheme``, or ``None``)."""
    if isinstance(tokens, str) or any(isinstance(t, str) for t in tokens):
        raise DataError("expected a list of token lists, e.g. [['John', 'lives', 'here']]")
    if tags is not None and len(tags) != len(tokens):
        raise DataError(f"{source}: {len(tokens)} token lists but {len(tags)} tag lists")
    records = [{"tokens": list(t), **({} if tags is None else {"tags": list(tags[i])})}
               for i, t in enumerate(tokens)]
    return from_records(records, scheme, require_tags=tags is not None, on_invalid=on_invalid,
                        source=source, unit="sentence")


def from_texts(texts: list[str], source: str = "<texts>") -> Sentences:
    """Unlabelled sentences from raw texts, tokenised with ``tokenize``. An empty text gives a
    sentence without tokens (its prediction is an empty list)."""
    if isinstance(texts, str):
        raise DataError("expected a list of texts, got a single string; wrap it in a list")
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise DataError(f"texts must be strings; items {bad[:10]} are not")
    toks = [tokenize(t) for t in texts]
    return Sentences(tokens=[[w for w, _, _ in ts] for ts in toks], tags=None,
                     offsets=[[(a, b) for _, a, b in ts] for ts in toks], texts=list(texts),
                     source=source, lines=[0] * len(texts))


def read(path, scheme: str = "auto", *, require_tags: bool = True,
         on_invalid: str = "warn") -> Sentences:
    """Read a NER file: ``.jsonl``/``.ndjson``/``.json`` (optionally ``.gz``) as JSON lines,
    anything else as a CoNLL column file."""
    name = Path(path).name.lower().removesuffix(".gz")
    reader = read_jsonl if name.endswith(JSONL_EXTENSIONS) else read_conll
    return reader(path, scheme, require_tags=require_tags, on_invalid=on_invalid)


def split(sents: Sentences, valid_fraction: float = 0.1, seed: int = 0) -> tuple[Sentences, Sentences]:
    """A seeded random (train, validation) split of sentences; both keep the original order."""
    n = len(sents)
    if n < 2:
        raise DataError(f"{sents.source} has {n} sentence(s): at least 2 are needed to split off "
                        "validation data. Add sentences or give a validation file.")
    if not 0 < valid_fraction <= 0.5:
        raise DataError(f"the validation fraction must be in (0, 0.5], got {valid_fraction!r}")
    n_valid = min(max(1, round(valid_fraction * n)), n - 1)
    valid_idx = set(np.random.default_rng(seed).permutation(n)[:n_valid].tolist())
    train = sents.subset([i for i in range(n) if i not in valid_idx])
    valid = sents.subset(sorted(valid_idx))
    note = (f"split {valid_fraction * 100:g}% of {sents.source} for validation (seed {seed}): "
            f"{len(train)} training / {len(valid)} validation sentences")
    log.info("%s", note)
    train.notes.append(note)
    valid.notes.append(note)
    return train, valid


