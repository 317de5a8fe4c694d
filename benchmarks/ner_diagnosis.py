#!/usr/bin/env python
"""Issue 22's diagnosis runs: what makes me5-small fine-tuning learn (or not) in one epoch.

Each argument is ``NAME=JSON`` (``TokenClassifier`` keyword arguments); every run fine-tunes on
3,000 seeded CoNLL-2003 training sentences (``ZH=1``: 2,700 People's Daily sentences, see
``people_daily.py``) and prints one JSON line with the validation scores (1,000 eng.testa
sentences; ``ZH=1``: 300 held-out People's Daily sentences) and the seconds. ``--probe`` instead
fits a logistic regression on frozen first-sub-word features of 1,000 sentences per backbone
(is the representation sound?); ``ALIAS:text`` tokenises the sentences as running text
(``pieces=text``, one regression per slot). The numbers are in benchmarks/README.md (NER section).

    python benchmarks/ner_diagnosis.py 'base={"model":"me5-small","epochs":1}' \\
        'head5e-3={"model":"me5-small","epochs":1,"options":{"head_learning_rate":5e-3}}' \\
        'random={"model":"me5-small","epochs":1,"options":{"head_init":"random"}}'
    python benchmarks/ner_diagnosis.py --probe minilm me5-small
    ZH=1 python benchmarks/ner_diagnosis.py --probe me5-small:words me5-small:text
"""

from __future__ import annotations

import json
import os
import sys
import time

import common

CONLL = os.environ.get("CONLL2003_DIR", "/work/shared/data/conll2003")


def data(n: int = 3000):
    import numpy as np

    from ronghe import ner

    rng = np.random.default_rng(0)
    if os.environ.get("ZH"):
        from people_daily import make

        full = ner.read(make(3000, 1000) / "train.bmes")
        idx = rng.permutation(len(full))
        return full.subset(sorted(idx[300:].tolist())), full.subset(sorted(idx[:300].tolist()))
    tr = ner.read(f"{CONLL}/eng.train")
    rng = np.random.default_rng(0)
    tr = tr.subset(sorted(rng.permutation(len(tr))[:n].tolist()))
    return tr, ner.read(f"{CONLL}/eng.testa").subset(range(1000))


def probe(spec: str) -> dict:
    """``ALIAS[:PIECES]``: logistic regression on frozen features (one per slot in text mode)."""
    import numpy as np
    import torch
    from sklearn.linear_model import LogisticRegression

    from ronghe import backbones, ner
    from ronghe.ner.subwords import SubwordWindows

    alias, _, pieces = spec.partition(":")
    tr, va = data(1000)
    tr = tr.subset(range(min(1000, len(tr))))
    va = va.subset(range(min(500, len(va))))
    path = backbones.resolve(alias).path
    enc, tok = backbones.load_encoder(path).eval(), backbones.load_tokenizer(path)
    sw = SubwordWindows(tok, 128, pieces=pieces or "words")

    def feats(s):
        """Per word: the feature of its sub-word in its most central window, and its slot."""
        x = [np.zeros((len(t), enc.config.hidden_size), np.float32) for t in s.tokens]
        slot = [np.zeros(len(t), int) for t in s.tokens]
        best = [np.full(len(t), -1.0) for t in s.tokens]
        with torch.inference_mode():
            for w in sw.windows(s.tokens):
                h = enc(input_ids=torch.tensor([w.ids])).last_hidden_state[0].numpy()
                for p, j, c, k in zip(w.positions, w.words, w.centrality, w.slots):
                    if c > best[w.sentence][j]:
                        best[w.sentence][j], x[w.sentence][j] = c, h[p]
                        slot[w.sentence][j] = min(k, 3)
        return np.concatenate(x), np.concatenate(slot)

    (x, sx), (xv, sv) = feats(tr), feats(va)
    y = np.array([t for s in tr.tags for t in s])
    mu, sd = x.mean(0), x.std(0) + 1e-6
    flat = np.empty(len(xv), dtype=object)
    for k in np.unique(sv):
        m = sx == k if len(set(y[sx == k])) > 1 else sx == 0
        lr = LogisticRegression(max_iter=2000).fit((x[m] - mu) / sd, y[m])
        flat[sv == k] = lr.predict((xv[sv == k] - mu) / sd)
    out, i = [], 0
    for s in va.tags:
        out.append(list(flat[i:i + len(s)]))
        i += len(s)
    return {"probe": spec, "valid_f1": round(ner.entity_metrics(va.tags, out)["f1"], 4)}


def main(argv: list[str]) -> int:
    common.pin_threads()
    common.torch_threads()
    sys.path.insert(0, str(common.ROOT / "src"))
    if argv and argv[0] == "--probe":
        for alias in argv[1:]:
            print(json.dumps(probe(alias)), flush=True)
        return 0
    from ronghe import ner

    tr, va = data()
    for spec in argv:
        name, params = spec.split("=", 1)
        t = time.perf_counter()
        clf = ner.TokenClassifier(strategy="finetune", seed=0, **json.loads(params)).fit(tr, va)
        print(json.dumps({"name": name, "valid": clf.metrics_["valid"],
                          "seconds": round(time.perf_counter() - t)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
