#!/usr/bin/env python
"""Does a fresh head need a larger learning rate than the encoder? (the ``finetune`` default)

For BANKING77 (77 classes) and SST-2 (2 classes): 3,000 seeded training rows, ``finetune`` MiniLM
for 3 epochs, max_length 64, seed 0, 1 thread; the head at the encoder's 5e-5 (the old default)
vs 5e-4 (the new default: 10x, at most 1e-3). Scored on 1,500 other *training* rows, so no test
set is used to choose a default. Writes benchmarks/results/head_lr.json.

    python benchmarks/head_lr.py
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

import common  # noqa: E402  benchmarks/common.py: this script's folder is first on sys.path

DATA = os.environ.get("RONGHE_DATA", "/work/shared/data")
SETS = {"banking77": ("banking77/train.csv", ",", "text", "category"),
        "sst2": ("sst2/train.tsv", "\t", "content", "label")}


def run(name: str, head_lr: float | None) -> dict:
    from ronghe import TextClassifier

    path, sep, text, label = SETS[name]
    df = pd.read_csv(f"{DATA}/{path}", sep=sep).sample(frac=1, random_state=1)
    train, held = df.iloc[:3000], df.iloc[3000:4500]
    start = time.time()
    clf = TextClassifier(strategy="finetune", epochs=3, max_length=64, seed=0,
                         options={"head_learning_rate": head_lr}).fit(
        train[text].tolist(), train[label].tolist())
    acc = float(np.mean(clf.predict(held[text].tolist()).astype(str) == held[label].astype(str).values))
    return {"data": name, "head_learning_rate": head_lr, "heldout_accuracy": round(acc, 4),
            "seconds": round(time.time() - start, 1), "history": clf.strategy_.history}


def main() -> None:
    torch.set_num_threads(1)
    rows = [run(name, lr) for name in SETS for lr in (5e-5, 5e-4)]
    for r in rows:
        print(r["data"], r["head_learning_rate"], r["heldout_accuracy"])
    common.write_json("head_lr", {"benchmark": "head_lr", "machine": common.machine_info(),
                                  "rows": rows}, quick=False)


if __name__ == "__main__":
    main()
