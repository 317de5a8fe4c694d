#!/usr/bin/env python
"""Issue 22: what kind of errors an NER bundle makes on the People's Daily test set.

Each false positive (a predicted entity that is not a gold one, strict spans) is sorted into
``boundary`` (it overlaps a gold entity whose span differs: an entity cut short or run on),
``type`` (the same span as a gold entity, another type) or ``no-overlap``. The counts per type,
and the most frequent wrong and missed strings, are printed and written to
``benchmarks/results/ner_errors.json`` (one entry per bundle). The bundles are the ones
``ner.py`` saves under ``benchmarks/.work/ner/<config>``; the numbers are quoted in the NER
section of benchmarks/README.md.

    python benchmarks/ner_errors.py benchmarks/.work/ner/pd-me5-lr1e4 benchmarks/.work/ner/pd-default-me5
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "ner_errors.json"


def errors(bundle: Path, test) -> dict:
    from seqeval.metrics.sequence_labeling import get_entities

    from ronghe import ner

    pred = ner.load(bundle).predict_tags(test)
    kinds, wrong, missed = collections.Counter(), collections.Counter(), collections.Counter()
    for toks, g, p in zip(test.tokens, test.tags, pred):
        gold, found = set(get_entities(list(g))), set(get_entities(list(p)))
        for t, s, e in found - gold:
            over = [x for x in gold if not (x[2] < s or x[1] > e)]
            kind = ("no-overlap" if not over else
                    "type" if any(x[1] == s and x[2] == e for x in over) else "boundary")
            kinds[kind] += 1
            wrong[f"{t} {''.join(toks[s:e + 1])} ({kind})"] += 1
        for t, s, e in gold - found:
            missed[f"{t} {''.join(toks[s:e + 1])}"] += 1
    return {"false_positives": sum(kinds.values()), "by_kind": dict(kinds),
            "false_negatives": sum(missed.values()),
            "top_false_positives": wrong.most_common(15), "top_missed": missed.most_common(15)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("bundles", nargs="+", type=Path)
    args = ap.parse_args(argv)
    sys.path.insert(0, str(HERE.parent / "src"))
    from people_daily import make

    from ronghe import ner

    test = ner.read(make(3000, 1000) / "test.bmes")
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    for b in args.bundles:
        results[b.name] = errors(b, test)
        r = results[b.name]
        print(f"{b.name}: {r['false_positives']} false positives {r['by_kind']}, "
              f"{r['false_negatives']} missed", flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
