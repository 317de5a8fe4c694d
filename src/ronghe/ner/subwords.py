"""Words to sub-word windows, shared by the torch tagger (``finetune.py``) and the ONNX one
(``onnx.py``); no torch here.

Each word is tokenised on its own; its label sits on its first sub-word. A word the tokenizer
turns into nothing (a zero-width character) becomes the unknown token, so every word gets a
prediction. SentencePiece tokenizers (me5-small) emit a bare ``"▁"`` before a Chinese
character; it is dropped so the label sits on the character itself. Long sentences are cut into
windows of ``max_length`` ids (special tokens included) that advance by ``stride`` sub-words;
at prediction each word takes its scores from the window where its first sub-word is most
central (``best_window_emissions``).
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


class SubwordWindows:
    """Words -> sub-word ids (cached per word) -> windows of at most ``max_length`` ids."""

    def __init__(self, tokenizer, max_length: int, stride: int | None = None):
        self.tokenizer = tokenizer
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

    def windows(self, sentences: list[list[str]]) -> list[Window]:
        out = []
        pre = len(self.prefix)
        for si, words in enumerate(self.pieces(sentences)):
            if not words:
                continue
            flat: list[int] = []
            first: list[int] = []
            for p in words:
                first.append(len(flat))
                flat.extend(p)
            total = len(flat)
            starts = [0]
            while starts[-1] + self.budget < total:
                starts.append(min(starts[-1] + self.stride, total - self.budget))
            for s in starts:
                e = min(s + self.budget, total)
                pos, idx, cen = [], [], []
                for w, f in enumerate(first):
                    if s <= f < e:
                        pos.append(pre + f - s)
                        idx.append(w)
                        left = f - s if s > 0 else float("inf")
                        right = e - 1 - f if e < total else float("inf")
                        cen.append(min(left, right))
                if pos:
                    out.append(Window(si, self.prefix + flat[s:e] + self.suffix, pos, idx, cen))
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
