"""Measuring surge detectors on labelled streams: false alarms on control streams, detection
delay after a known onset, and repeated alarms after a lasting level shift.

A stream is a sequence of 0/1 negative flags for one key; ``run(rule, flags)`` returns the
positions of the alarms. Used by ``benchmarks/monitor.py`` (synthetic streams and streams built
from SST-2) and by the tests that hold the default rule to its aims.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .config import RuleConfig
from .detectors import Detector


def run(rule: RuleConfig, flags) -> list[int]:
    det = Detector(rule)
    st = det.new_state()
    return [i for i, x in enumerate(flags) if det.update(st, int(x)) is not None]


def bernoulli(n: int, p: float, rng: random.Random) -> list[int]:
    return [1 if rng.random() < p else 0 for _ in range(n)]


@dataclass
class Scores:
    false_alarms_per_10k: float  # on control streams (no surge)
    control_items: int
    detected: float  # share of surges alarmed within `horizon` items of the onset
    delay_median: float | None  # items of the key from onset to the alarm
    delay_p90: float | None
    realarms_after_shift: float  # mean alarms after the first, on a lasting shift
    by_rate: dict | None = None  # the same, per base rate


def _quantile(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return float(xs[min(len(xs) - 1, int(q * len(xs)))])


def synthetic(rule: RuleConfig, *, base_rates=(0.1, 0.2, 0.3), streams: int = 10,
              control_len: int = 20_000, warmup: int = 1000, ratio: float = 2.0,
              horizon: int = 200, shift_len: int = 3000, seed: int = 0) -> Scores:
    """Control streams (constant share), surges (share x ``ratio`` from ``warmup`` on, for
    ``horizon`` items) and lasting shifts (x ``ratio`` for ``shift_len`` items)."""
    rng = random.Random(seed)
    per = {}
    for p in base_rates:
        q = min(1.0, ratio * p)
        fa = n_control = hits = 0
        delays: list[float] = []
        realarms: list[int] = []
        for _ in range(streams):
            flags = bernoulli(control_len, p, rng)
            fa += len(run(rule, flags))
            n_control += control_len
            pre = bernoulli(warmup, p, rng)
            surge = run(rule, pre + bernoulli(horizon, q, rng))
            fa += sum(1 for a in surge if a < warmup)
            n_control += warmup
            after = [a - warmup + 1 for a in surge if a >= warmup]
            if after:
                hits += 1
                delays.append(after[0])
            shift = run(rule, pre + bernoulli(shift_len, q, rng))
            realarms.append(max(0, sum(1 for a in shift if a >= warmup) - 1))
        per[p] = (fa, n_control, hits, streams, delays, realarms)

    def score(parts) -> Scores:
        fa = sum(x[0] for x in parts)
        n = sum(x[1] for x in parts)
        delays = [d for x in parts for d in x[4]]
        re = [r for x in parts for r in x[5]]
        return Scores(round(fa / n * 10_000, 3), n,
                      round(sum(x[2] for x in parts) / sum(x[3] for x in parts), 4),
                      _quantile(delays, 0.5), _quantile(delays, 0.9), round(sum(re) / len(re), 3))

    out = score(list(per.values()))
    out.by_rate = {p: score([v]).__dict__ for p, v in per.items()}
    for v in out.by_rate.values():
        v.pop("by_rate")
    return out
