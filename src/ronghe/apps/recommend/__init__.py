"""Recommendation: collaborative signals and item text fused by a learned ranker.

::

    config.py       RecommendConfig: every knob of a build (pydantic), kept in the bundle
    data.py         reading interactions, items and users; the time-aware leave-last-out split
    signals.py      popularity, co-occurrence, MF (implicit), text similarity (faiss search)
    ranker.py       candidates, their features, LightGBM LambdaRank training
    recommender.py  Recommender: fit, recommend (with reasons), similar, add items / clicks,
                    save/load as a bundle (no pickle)
    bandit.py       exploration: mabwiser LinUCB / LinTS over text clusters, replay evaluation
    evaluate.py     full-ranking HR@10, NDCG@10, MRR, recall@50, coverage; warm / cold /
                    one-interaction slices; latency
    storage.py      feedback events and API-added items through ``ronghe.store`` (SQLAlchemy)
    routes.py       /v1/recommend/... on ``ronghe serve``'s app
    cli.py          ``ronghe recommend train | evaluate | serve``

>>> from ronghe.apps.recommend import Recommender, load
>>> rec = Recommender().fit(interactions, items)      # data.read_interactions / read_items
>>> rec.recommend("user-17", k=10)[0]["reasons"]
"""

from __future__ import annotations

from .recommender import Recommender, load

__all__ = ["Recommender", "load"]
