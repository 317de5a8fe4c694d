"""``ronghe demo``: every strategy on a small real sentiment set, and a leaderboard.

The data ships in the package (``resources/sst2``): 4,000 sentences and phrases sampled with seed 0
from the GLUE SST-2 training set, and the full SST-2 dev set (872 sentences) for evaluation -
public research data (Socher et al. 2013; GLUE, Wang et al. 2018).
"""

from __future__ import annotations

import json
import time
from importlib import resources
from pathlib import Path

from . import data
from .classifier import TextClassifier

# Small, fixed settings so the demo finishes in a few minutes on 2 CPU cores.
DEMO_PARAMS = {"classic": {}, "frozen": {}, "finetune": {"epochs": 3}}


def sample_paths() -> tuple[Path, Path]:
    root = resources.files("ronghe") / "resources" / "sst2"
    return Path(str(root / "train.csv")), Path(str(root / "dev.csv"))


def run(out: Path, strategies: list[str], console=None) -> list[dict]:
    """Train, save and evaluate each strategy; print and return the leaderboard rows."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    train_path, dev_path = sample_paths()
    train, dev = data.load(train_path), data.load(dev_path)
    console.print(f"ronghe demo: SST-2 sentiment, {len(train)} training examples, "
                  f"{len(dev)} dev examples; strategies: {', '.join(strategies)}")
    rows = []
    for name in strategies:
        console.print(f"[bold]training {name}[/] ...", markup=True)
        clf = TextClassifier(strategy=name, **DEMO_PARAMS.get(name, {})).fit(train)
        path = clf.save(Path(out) / name)
        start = time.perf_counter()
        report = clf.evaluate(dev)
        ms = (time.perf_counter() - start) * 1000 / len(dev)
        rows.append({"strategy": name, "accuracy": report["accuracy"], "macro_f1": report["macro_f1"],
                     "train_seconds": clf.train_seconds_, "ms_per_example": ms, "bundle": str(path)})
    rows.sort(key=lambda r: -r["macro_f1"])
    table = Table("rank", "strategy", "dev accuracy", "dev macro-F1", "train s", "ms / example",
                  title="SST-2 dev leaderboard")
    for i, r in enumerate(rows, 1):
        table.add_row(str(i), r["strategy"], f"{r['accuracy']:.4f}", f"{r['macro_f1']:.4f}",
                      f"{r['train_seconds']:.1f}", f"{r['ms_per_example']:.2f}")
    console.print(table)
    for r in rows:
        console.print(f"  {r['strategy']:<10} bundle: {r['bundle']}")
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "leaderboard.json").write_text(json.dumps(rows, indent=2))
    console.print(f"Try: ronghe predict {rows[0]['bundle']} --text \"a gripping, beautifully "
                  f"acted film\"")
    return rows
