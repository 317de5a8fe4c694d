"""``weighted``: late fusion of two members, p = a * p_first + (1 - a) * p_second.

By default a fine-tuned transformer and the TF-IDF model. ``a`` is chosen on validation data by
a grid search over [0, 1] (ties go to the weight closest to 0.5) and stored in the bundle.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field
from sklearn.metrics import f1_score

from ..strategies.base import Strategy
from . import members as M


class WeightedConfig(M.FusionConfig):
    members: list[str] = Field(["finetune", "classic"], min_length=2, max_length=2)
    grid_points: int = Field(21, ge=3, le=1001, description="values of a tried in [0, 1]")


class Weighted(Strategy):
    name = "weighted"
    Config = WeightedConfig
    uses_features = True  # passes feature columns on to members that use them

    def fit(self, train, valid):
        self.members = [M.build(n, self.config, self.classes, self.context, self.task)
                        for n in self.config.members]
        for m in self.members:
            m.fit(train, valid)
        return self.choose_alpha(valid)

    @classmethod
    def from_members(cls, members: list, valid) -> "Weighted":
        """Fuse two already fitted strategies (e.g. from a leaderboard run) without retraining."""
        cfg = cls.Config(members=[m.name for m in members], model=getattr(
            members[0].config, "model", cls.Config.model_fields["model"].default))
        self = cls(cfg, members[0].classes)
        self.members = list(members)
        return self.choose_alpha(valid)

    def choose_alpha(self, valid) -> "Weighted":
        p1, p2 = M.probas(self.members, valid.inputs, valid.features)
        y = self.label_ids(valid.labels)
        best = (-1.0, 0.0, 0.5)
        for a in np.linspace(0, 1, self.config.grid_points):
            f1 = f1_score(y, (a * p1 + (1 - a) * p2).argmax(1), average="macro")
            self.history.append({"alpha": round(float(a), 4), "valid_macro_f1": round(float(f1), 5)})
            key = (round(f1, 9), -abs(a - 0.5))
            if key > (round(best[0], 9), -abs(best[2] - 0.5)):
                best = (f1, 0.0, float(a))
        self.alpha = best[2]
        self.report["alpha"] = self.alpha
        return self

    def predict_proba(self, inputs, features=None):
        p1, p2 = M.probas(self.members, inputs, features)
        return self.alpha * p1 + (1 - self.alpha) * p2

    def to_state(self):
        return M.to_state(self.members, {"alpha": self.alpha})

    @classmethod
    def from_state(cls, config, classes, backbone, reader):
        self = cls(config, classes, backbone)
        self.members, self.alpha = M.load(reader), reader.meta["alpha"]
        return self
