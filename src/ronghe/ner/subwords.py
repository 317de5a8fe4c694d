"""Words to sub-word windows, shared by the torch tagger (``finetune.py``) and the ONNX one
(``onnx.py``); no torch here.

Two ways to turn words into sub-words (``pieces``):

* ``words``: each word is tokenised on its own; its label sits on its first sub-word. A word the
  tokenizer turns into nothing (a zero-width character) becomes the unknown token, so every word
  gets a prediction. SentencePiece tokenizers (me5-small) emit a bare ``"▁"`` before a Chinese
  character; it is dropped so the label sits on the character itself.
* ``text``: for character-level data (Chinese, Japanese: one "word" per character), the
  sentence is tokenised as the running text it was, so the encoder sees the multi-character
  pieces it was pre-trained on (``七年``, ``北京``) instead of a chain of lone characters (measured
  on People's Daily, frozen me5-small features + logistic regression: entity F1 0.279 per
  character, 0.429 on running-text pieces). Several characters then share a piece: each word
  records its piece and its ``slot``, its rank among the piece's words, and the head scores
  ``slots`` tag sets per piece (``Window.pick`` takes each word's own), so a boundary inside a
  piece (``在|北京``: 3.7 % of People's Daily entities) is still representable.

Long sentences are cut into windows of ``max_length`` ids (special tokens included) that advance
by ``stride`` sub-words; at prediction each word takes its scores from the window where its
sub-word is most central (``best_window_emissions``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError


@dataclass
class Window:
    sentence: int
    ids: list[int]  # with special tokens
    positions: list[int]  # index in ids of each covered word's first sub-word
    words: list[int]  # the word each position belongs to
    centrality: list[float]  # distance of that sub-word to the nearer window edge
    slots: list[int] | None = None  # each word's rank among the words sharing its piece

    def pick(self, rows: np.ndarray, n_tags: int) -> np.ndarray:
        """``rows`` (the emissions at ``positions``, ``(n, k * n_tags)``) -> ``(n, n_tags)``:
        each word's own slot (the last slot for ranks beyond ``k``)."""
        k = rows.shape[1] // n_tags
        if k == 1:
            return rows
        slot = np.minimum(np.asarray(self.slots or [0] * len(rows)), k - 1)
        return rows.reshape(len(rows), k, n_tags)[np.arange(len(rows)), slot]


PIECES = ("words", "text")
CHAR_LEVEL_SHARE = 0.9


def char_level(sentences: list[list[str]]) -> bool:
    """True when at least 90 % of the words are single characters (a character-level corpus)."""
    n = sum(len(s) for s in sentences)
    return n > 0 and sum(len(w) == 1 for s in sentences for w in s) >= CHAR_LEVEL_SHARE * n


class SubwordWindows:
    """Words -> sub-word ids (cached per word) -> windows of at most ``max_length`` ids."""

    def __init__(self, tokenizer, max_length: int, stride: int | None = None,
                 pieces: str = "words"):
        if pieces not in PIECES:
            raise ConfigError(f"pieces={pieces!r}: use one of {', '.join(PIECES)}")
        self.tokenizer, self.mode = tokenizer, pieces
        plain = tokenizer("a", add_special_tokens=False)["input_ids"]
        full = tokenizer("a", add_special_tokens=True)["input_ids"]
        at = next(i for i in range(len(full)) if full[i:i + len(plain)] == plain)
        self.prefix, self.suffix = full[:at], full[at + len(plain):]
        self.budget = max_length - len(self.prefix) - len(self.suffix)
        if self.budget < 2:
            raise ConfigError(f"max_length={max_length} leaves no room for sub-words next to the "
                              f"{len(full) - len(plain)} special tokens; use at least 16")
        self.stride = min(stride or max(1, self.budget // 2), self.budget)
        self.unk = tokenizer.unk_token_id if tokenizer.unk_token_id is not None else 0
        space = tokenizer.convert_tokens_to_ids("▁") if "▁" in tokenizer.get_vocab() else None
        self.space = space
        self.cache: dict[str, list[int]] = {}

    def pieces(self, sentences: list[list[str]]) -> list[list[list[int]]]:
        new = sorted({w for s in sentences for w in s if w not in self.cache})
        for i in range(0, len(new), 4096):
            chunk = new[i:i + 4096]
            for w, ids in zip(chunk, self.tokenizer(chunk, add_special_tokens=False)["input_ids"]):
                if len(ids) > 1 and ids[0] == self.space:
                    ids = ids[1:]
                self.cache[w] = list(ids[:self.budget]) or [self.unk]
        return [[self.cache[w] for w in s] for s in sentences]

    def text_pieces(self, words: list[str]) -> tuple[list[int], list[int], list[int]]:
        """One sentence as running text: (piece ids, each word's piece, each word's slot).
        Single characters join without a space, longer words with one. A word with no piece of
        its own (a character the tokenizer drops) shares the previous word's piece."""
        text, starts = "", []
        for j, w in enumerate(words):
            if j and not (len(w) == 1 and len(words[j - 1]) == 1):
                text += " "
            starts.append(len(text))
            text += w
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids, owner = [], [-1] * len(text)
        for i, (a, b) in zip(enc["input_ids"], enc["offset_mapping"]):
            if i != self.space:  # the bare metaspace before some pieces owns no character
                for c in range(a, min(b, len(text))):
                    if owner[c] < 0:
                        owner[c] = len(ids)
            ids.append(i)
        ids = ids or [self.unk]
        first: list[int] = []
        for w, s in zip(words, starts):
            own = [owner[c] for c in range(s, s + len(w)) if owner[c] >= 0]
            first.append(own[0] if own else -1)
        known = [p for p in first if p >= 0]
        prev = known[0] if known else 0
        slots: list[int] = []
        for j, p in enumerate(first):
            p = prev if p < 0 else p
            first[j], prev = p, p
            slots.append(slots[-1] + 1 if j and first[j - 1] == p else 0)
        return ids, first, slots

    def encode(self, sentences: list[list[str]]):
        """Per sentence (sub-word ids, each word's first sub-word, each word's slot)."""
        if self.mode == "text":
            return [self.text_pieces(s) if s else ([], [], []) for s in sentences]
        out = []
        for words in self.pieces(sentences):
            flat: list[int] = []
            first: list[int] = []
            for p in words:
                first.append(len(flat))
                flat.extend(p)
            out.append((flat, first, [0] * len(first)))
        return out

    def windows(self, sentences: list[list[str]]) -> list[Window]:
        out = []
        pre = len(self.prefix)
        for si, (flat, first, slots) in enumerate(self.encode(sentences)):
            if not first:
                continue
            total = len(flat)
            starts = [0]
            while starts[-1] + self.budget < total:
                starts.append(min(starts[-1] + self.stride, total - self.budget))
            for s in starts:
                e = min(s + self.budget, total)
                pos, idx, cen, slot = [], [], [], []
                for w, f in enumerate(first):
                    if s <= f < e:
                        pos.append(pre + f - s)
                        idx.append(w)
                        slot.append(slots[w])
                        left = f - s if s > 0 else float("inf")
                        right = e - 1 - f if e < total else float("inf")
                        cen.append(min(left, right))
                if pos:
                    out.append(Window(si, self.prefix + flat[s:e] + self.suffix, pos, idx, cen,
                                      slot))
        return out


def best_window_emissions(tokens: list[list[str]], wins: list[Window], ems: list[np.ndarray],
                          n_tags: int) -> list[np.ndarray]:
    """Per sentence an ``(n_words, n_tags)`` array from the windows' emissions (``ems[i]``: one
    row per position of ``wins[i]``): each word's row from the window where it is most central."""
    out = [np.zeros((len(t), n_tags), dtype=np.float32) for t in tokens]
    best = [np.full(len(t), -1.0) for t in tokens]
    for w, em in zip(wins, ems):
        b, o = best[w.sentence], out[w.sentence]
        for r, (j, c) in enumerate(zip(w.words, w.centrality)):
            if c > b[j]:
                b[j] = c
                o[j] = em[r]
    for i, b in enumerate(best):
        assert (b >= 0).all(), f"sentence {i}: a word got no window"  # cannot happen
    return out
