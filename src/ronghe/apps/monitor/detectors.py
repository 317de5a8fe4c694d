"""Surge detectors for one watch key's stream of negative (1) / not negative (0) items.

Both keep the key's last ``window`` flags and an exponentially weighted baseline of its
negative share learnt from the items that have *left* the window (so a surge does not raise its
own baseline). No test before ``min_count`` items are in the baseline. After an alarm (with
``reset``, the default) the key starts over: CUSUM back to 0, window emptied, baseline learnt
again from the items after the alarm - no test for ``window + min_count`` items of the key (and
at least ``cooldown``) - so a level shift is reported once, against its new level afterwards,
not again and again.

* ``cusum``: Bernoulli CUSUM of the log-likelihood ratio of "share = ratio x baseline" against
  "share = baseline"; alarm when it reaches ``threshold``; reset to 0 after an alarm.
* ``binomial``: one-sided binomial test of the window's negative count against the baseline
  (``scipy.stats.binom.sf``); alarm when p < ``alpha`` and the share exceeds the baseline by at
  least ``min_excess``.

A state is a plain dict (JSON in the database), so a restarted monitor continues where it was.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from .config import RuleConfig

P_MIN, P_MAX = 0.005, 0.995


@dataclass
class Signal:
    observed: float  # negative share in the window
    expected: float  # the baseline share
    score: float  # CUSUM statistic, or -log10(p) for the binomial test
    p_value: float  # binomial p-value of the window against the baseline
    n: int  # items in the window
    negatives: int


def binom_p(k: int, n: int, p0: float) -> float:
    from scipy.stats import binom

    return float(binom.sf(k - 1, n, p0))


class KeyState:
    __slots__ = ("window", "neg", "base", "n_base", "seen", "s", "cool", "alarms")

    def __init__(self, window: int):
        self.window: deque[int] = deque(maxlen=window)
        self.neg = 0  # negatives in the window
        self.base = 0.0  # EWMA negative share of the items that left the window
        self.n_base = 0
        self.seen = 0
        self.s = 0.0
        self.cool = 0
        self.alarms = 0

    def to_dict(self) -> dict:
        return {"w": "".join("1" if x else "0" for x in self.window), "base": self.base,
                "n_base": self.n_base, "seen": self.seen, "s": self.s, "cool": self.cool,
                "alarms": self.alarms}

    @classmethod
    def from_dict(cls, d: dict, window: int) -> "KeyState":
        st = cls(window)
        bits = d.get("w", "")[-window:]
        st.window.extend(1 if c == "1" else 0 for c in bits)
        st.neg = sum(st.window)
        st.base, st.n_base, st.seen = float(d["base"]), int(d["n_base"]), int(d["seen"])
        st.s, st.cool, st.alarms = float(d["s"]), int(d["cool"]), int(d["alarms"])
        return st

    def copy(self) -> "KeyState":
        c = KeyState(self.window.maxlen)
        c.window.extend(self.window)
        for a in ("neg", "base", "n_base", "seen", "s", "cool", "alarms"):
            setattr(c, a, getattr(self, a))
        return c


class Detector:
    """The rule's method over one key's state: ``update(state, negative) -> Signal | None``."""

    def __init__(self, rule: RuleConfig):
        self.rule = rule
        self.lam = 1 - 0.5 ** (1 / rule.halflife)
        self.min_base = max(1, rule.min_count)

    def new_state(self) -> KeyState:
        return KeyState(self.rule.window)

    def _learn(self, st: KeyState, x: int) -> None:
        st.n_base += 1
        w = max(self.lam, 1 / st.n_base)  # running mean until the EWMA's memory is filled
        st.base += w * (x - st.base)

    def update(self, st: KeyState, x: int) -> Signal | None:
        r = self.rule
        if len(st.window) == st.window.maxlen:
            old = st.window[0]
            st.neg -= old
            self._learn(st, old)
        st.window.append(x)
        st.neg += x
        st.seen += 1
        if st.n_base < self.min_base or len(st.window) < st.window.maxlen:
            return None
        p0 = min(max(st.base, P_MIN), P_MAX)
        n = len(st.window)
        if r.method == "cusum":
            p1 = min(r.ratio * p0, (1 + p0) / 2)
            llr = math.log(p1 / p0) if x else math.log((1 - p1) / (1 - p0))
            st.s = max(0.0, st.s + llr)
            if st.cool > 0:
                st.cool -= 1
                return None
            if st.s < r.threshold:
                return None
            sig = Signal(st.neg / n, p0, st.s, binom_p(st.neg, n, p0), n, st.neg)
        else:
            if st.cool > 0:
                st.cool -= 1
                return None
            share = st.neg / n
            if share - p0 < r.min_excess:
                return None
            p = binom_p(st.neg, n, p0)
            if p >= r.alpha:
                return None
            sig = Signal(share, p0, -math.log10(max(p, 1e-300)), p, n, st.neg)
        st.cool = r.cooldown
        st.alarms += 1
        if r.reset:  # the key starts over from the items after the alarm
            st.s = 0.0
            st.window.clear()
            st.neg = 0
            st.base = sig.observed
            st.n_base = 0
        return sig
