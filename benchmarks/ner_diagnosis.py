#!/usr/bin/env python
"""Issue 22's diagnosis runs: what makes me5-small fine-tuning learn (or not) in one epoch.

Each argument is ``NAME=JSON`` (``TokenClassifier`` keyword arguments); every run fine-tunes on
3,000 seeded CoNLL-2003 training sentences (``ZH=1``: 2,700 People's Daily sentences, see
``people_daily.py``) and prints one JSON line with the validation scores (1,000 eng.testa
sentences; ``ZH=1``: 300 held-out People's Daily sentences) and the seconds. ``--probe`` instead
fits a logistic regression on frozen first-sub-word features of 1,000 sentences per backbone
(is the representation sound?). The numbers are in benchmarks/README.md (NER section).

    python benchmarks/ner_diagnosis.py 'base={"model":"me5-small","epochs":1}' \\
        'head5e-3={"model":"me5-small","epochs":1,"options":{"head_learning_rate":5e-3}}' \\
        'random={"model":"me5-small","epochs":1,"options":{"head_init":"random"}}'
    python benchmarks/ner_diagnosis.py --probe minilm me5-small
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


def probe(alias: str) -> dict:
    import numpy as np
    import torch
    from sklearn.linear_model import LogisticRegression

    from ronghe import backbones, ner
    from ronghe.ner.subwords import SubwordWindows, best_window_emissions

    tr, va = data(1000)
    va = va.subset(range(min(500, len(va))))
    path = backbones.resolve(alias).path
    enc, tok = backbones.load_encoder(path).eval(), backbones.load_tokenizer(path)
    sw = SubwordWindows(tok, 128)

    def feats(s):
        wins, ems = sw.windows(s.tokens), []
        with torch.inference_mode():
            for w in wins:
                h = enc(input_ids=torch.tensor([w.ids]),
                        attention_mask=torch.ones(1, len(w.ids), dtype=torch.long))
                ems.append(h.last_hidden_state[0][w.positions].numpy())
        return np.concatenate(best_window_emissions(s.tokens, wins, ems, enc.config.hidden_size))

    x, xv = feats(tr), feats(va)
    mu, sd = x.mean(0), x.std(0) + 1e-6
    lr = LogisticRegression(max_iter=2000).fit((x - mu) / sd, [t for s in tr.tags for t in s])
    flat, out, i = lr.predict((xv - mu) / sd), [], 0
    for s in va.tags:
        out.append(list(flat[i:i + len(s)]))
        i += len(s)
    return {"probe": alias, "valid_f1": round(ner.entity_metrics(va.tags, out)["f1"], 4)}


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
