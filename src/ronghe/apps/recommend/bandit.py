"""Exploration on top of the ranker: a contextual bandit (``mabwiser``'s LinUCB, or LinTS)
chooses which *text clusters* of the catalogue get the exploration slots of a list.

* arms: k-means clusters of the item text embeddings (so a new item belongs to an arm at once);
* context: the user's text profile reduced by PCA, plus the history length;
* a list of ``k``: the ranker's best ``k - slots`` items, then for each of the ``slots`` arms with
  the highest upper confidence bound, the ranker's best item of that cluster not yet listed;
* reward: a click on an explored item (1) or its impression without a click (0), learned online
  by ``partial_fit``; the initial fit is each user's held-out-style last training interaction
  (its cluster rewarded 1, one other cluster 0).

Offline evaluation: ``replay`` walks held-out interactions in time order and scores the list
shown against the one item the user really took next (the replay estimator of Li et al., 2011,
for lists: the logged next item is the only observed click; an explored slot earns a reward only
if it shows that item). MovieLens-style logs were not collected by a random policy, so replay is
a comparison of policies on the same log, not an unbiased estimate of online click rate.
"""

from __future__ import annotations

import numpy as np


class Explorer:
    def __init__(self, rec, *, policy: str = "linucb", alpha: float = 0.5, clusters: int = 20,
                 slots: int = 2, dims: int = 16, seed: int = 0):
        from mabwiser.mab import MAB, LearningPolicy
        from sklearn.cluster import KMeans
        from sklearn.decomposition import PCA

        self.rec, self.slots = rec, slots
        E = rec.signals_.E
        n_clusters = max(2, min(clusters, len(E) // 5))
        self.kmeans = KMeans(n_clusters, n_init=3, random_state=seed).fit(E)
        self.pca = PCA(min(dims, E.shape[1], len(E) - 1), random_state=seed).fit(E)
        lp = (LearningPolicy.LinTS(alpha=alpha) if policy == "lints"
              else LearningPolicy.LinUCB(alpha=alpha))
        self.mab = MAB(list(range(n_clusters)), lp, seed=seed)
        self._fit_prior(seed)

    def cluster_of(self, positions: np.ndarray) -> np.ndarray:
        return self.kmeans.predict(self.rec.signals_.E[positions])

    def context(self, hist: np.ndarray) -> np.ndarray:
        p = self.rec.signals_.profile(hist)
        z = self.pca.transform(p[None])[0] if p is not None else np.zeros(self.pca.n_components_)
        return np.r_[z, np.log1p(len(hist)) / 5.0].astype(np.float64)

    def _fit_prior(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        X, arms, rewards = [], [], []
        for h in self.rec.hist_:
            if len(h) < 2:
                continue
            x = self.context(h[:-1])
            c = int(self.cluster_of(h[-1:])[0])
            other = int(rng.integers(self.mab.arms[-1] + 1))
            X += [x, x]
            arms += [c, other]
            rewards += [1, int(other == c)]
        if not arms:  # no history at all: one neutral observation per arm
            X = [np.zeros(self.pca.n_components_ + 1)] * len(self.mab.arms)
            arms, rewards = list(self.mab.arms), [0] * len(self.mab.arms)
        self.mab.fit(arms, rewards, np.asarray(X))

    def slate(self, user: str | None = None, k: int = 10, history: list[str] | None = None
              ) -> tuple[list[int], dict[int, int]]:
        """(item positions, {position: explored cluster}) for a user or a history."""
        full, hist = self.rec.full_ranking(user, history)
        order = np.argsort(-full, kind="stable")
        keep = max(0, k - self.slots)
        chosen = [int(i) for i in order[:keep]]
        expect = self.mab.predict_expectations(self.context(hist)[None])
        explored: dict[int, int] = {}
        clusters = self.kmeans.labels_ if len(self.kmeans.labels_) == len(full) else \
            self.cluster_of(np.arange(len(full)))
        for arm in sorted(expect, key=lambda a: -expect[a]):
            if len(chosen) >= k:
                break
            for i in order[keep:]:
                if clusters[i] == arm and np.isfinite(full[i]) and int(i) not in chosen:
                    chosen.append(int(i))
                    explored[int(i)] = int(arm)
                    break
        for i in order[keep:]:  # fewer clusters than slots: fill from the ranker
            if len(chosen) >= k:
                break
            if int(i) not in chosen and np.isfinite(full[i]):
                chosen.append(int(i))
        return chosen, explored

    def update(self, hist: np.ndarray, explored: dict[int, int], clicked: set[int]) -> None:
        """Learn from one shown list: each explored item clicked (1) or not (0)."""
        if not explored:
            return
        x = self.context(hist)
        arms = list(explored.values())
        rewards = [int(i in clicked) for i in explored]
        self.mab.partial_fit(arms, rewards, np.repeat(x[None], len(arms), axis=0))


def replay(rec, explorer: Explorer, test, k: int = 10) -> dict:
    """The replay estimator over held-out interactions in time order: HR@k of the ranker's
    list and of the explored list, their coverage, and the explored slots' click rate."""
    rows = test[test["user"].isin(rec.user_pos_)].sort_values("time", kind="stable")
    counts = rec.signals_.counts
    hits = {"ranker": [], "explore": []}
    cold_hits = {"ranker": [], "explore": []}
    shown = {"ranker": set(), "explore": set()}
    slot_rewards = []
    for row in rows.itertuples(index=False):
        target = rec.item_pos_[row.item]
        full, hist = rec.full_ranking(row.user)
        base = [int(i) for i in np.argsort(-full, kind="stable")[:k]]
        lst, explored = explorer.slate(row.user, k)
        for name, items in (("ranker", base), ("explore", lst)):
            hit = target in items
            hits[name].append(hit)
            if counts[target] == 0:
                cold_hits[name].append(hit)
            shown[name].update(items)
        slot_rewards += [int(i == target) for i in explored]
        explorer.update(hist, explored, {target})
    n_items = len(rec.item_ids_)
    return {"estimator": "replay (Li et al. 2011) over held-out next interactions, for lists",
            "events": len(rows),
            **{f"{name}_hr@{k}": float(np.mean(v)) if v else 0.0 for name, v in hits.items()},
            **{f"{name}_cold_hr@{k}": float(np.mean(v)) if v else 0.0
               for name, v in cold_hits.items()},
            **{f"{name}_coverage": len(s) / n_items for name, s in shown.items()},
            "explored_slot_click_rate": float(np.mean(slot_rewards)) if slot_rewards else 0.0}
