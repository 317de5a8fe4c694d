"""``weighted``: late fusion of two or more members, p = sum_i w_i * p_i with the weights on the
simplex (w_i >= 0, sum 1); for two members p = a * p_first + (1 - a) * p_second.

By default a fine-tuned transformer and the TF-IDF model. The weights are chosen on validation
data by a grid search over the simplex (steps of 1 / (grid_points - 1), made coarser when more
members would make more than ``max_grid`` points; ties go to the weights closest to equal) and
stored in the bundle. Members whose weight comes out 0 are kept (the bundle stays the fusion that
was asked for) but skipped at prediction.
"""

from __future__ import annotations

from math import comb

import numpy as np
from pydantic import Field
from sklearn.metrics import f1_score

from ..strategies.base import Strategy
from . import members as M


class WeightedConfig(M.FusionConfig):
    members: list[str] = Field(["finetune", "classic"], min_length=2, max_length=6)
    grid_points: int = Field(21, ge=3, le=1001, description="values of each weight tried in "
                                                            "[0, 1] (steps of 1 / (points - 1))")
    max_grid: int = Field(5000, ge=10, description="most weight combinations tried: with many "
                                                   "members the steps grow until the simplex grid "
                                                   "fits")


def simplex_grid(n: int, steps: int, max_points: int) -> np.ndarray:
    """Every weight vector of ``n`` non-negative multiples of 1 / s summing to 1, where s is
    ``steps`` or the largest smaller value giving at most ``max_points`` vectors."""
    s = steps
    while s > 1 and comb(s + n - 1, n - 1) > max_points:
        s -= 1

    def parts(k: int, total: int):
        if k == 1:
            yield (total,)
            return
        for first in range(total + 1):
            for rest in parts(k - 1, total - first):
                yield (first,) + rest

    return np.array(list(parts(n, s)), dtype=np.float64) / s


class Weighted(Strategy):
    name = "weighted"
    Config = WeightedConfig
    uses_features = True  # passes feature columns on to members that use them

    def fit(self, train, valid):
        self.members = [M.build(n, self.config, self.classes, self.context, self.task)
                        for n in self.config.members]
        for m in self.members:
            m.fit(train, valid)
        return self.choose_weights(valid)

    @classmethod
    def from_members(cls, members: list, valid) -> "Weighted":
        """Fuse already fitted strategies (e.g. from a leaderboard run) without retraining."""
        cfg = cls.Config(members=[m.name for m in members], model=getattr(
            members[0].config, "model", cls.Config.model_fields["model"].default))
        self = cls(cfg, members[0].classes)
        self.members = list(members)
        return self.choose_weights(valid)

    @property
    def alpha(self) -> float:
        """The first member's weight (two members: p = a * p_first + (1 - a) * p_second)."""
        return float(self.weights[0])

    def choose_weights(self, valid) -> "Weighted":
        probas = M.probas(self.members, valid.inputs, valid.features)
        y = self.label_ids(valid.labels)
        n = len(probas)
        grid = simplex_grid(n, self.config.grid_points - 1, self.config.max_grid)
        best_key, best_w, best_f1 = None, None, -1.0
        for w in grid:
            f1 = f1_score(y, sum(wi * p for wi, p in zip(w, probas)).argmax(1), average="macro")
            entry = ({"alpha": round(float(w[0]), 4)} if n == 2
                     else {"weights": [round(float(x), 4) for x in w]})
            self.history.append({**entry, "valid_macro_f1": round(float(f1), 5)})
            key = (round(f1, 9), -float(np.abs(w - 1 / n).sum()))
            if best_key is None or key > best_key:
                best_key, best_w, best_f1 = key, w, f1
        self.weights = [float(x) for x in best_w]
        self.report["weights"] = [round(x, 4) for x in self.weights]
        if n == 2:
            self.report["alpha"] = self.alpha
        self.report["valid_macro_f1"] = round(float(best_f1), 5)
        return self

    def predict_proba(self, inputs, features=None):
        used = [(w, m) for w, m in zip(self.weights, self.members) if w > 0]
        return sum(w * M.predict(m, inputs, features) for w, m in used)

    def to_state(self):
        meta = {"weights": self.weights}
        if len(self.members) == 2:
            meta["alpha"] = self.alpha  # what bundles written before N-member fusion read
        return M.to_state(self.members, meta)

    @classmethod
    def from_state(cls, config, classes, backbone, reader):
        self = cls(config, classes, backbone)
        self.members = M.load(reader)
        a = reader.meta.get("alpha")
        self.weights = list(reader.meta.get("weights") or [a, 1 - a])
        return self
