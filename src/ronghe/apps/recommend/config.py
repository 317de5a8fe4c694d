"""``RecommendConfig``: every knob of a recommender build, validated (pydantic), kept in the
bundle."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ...config import validate

SIGNALS = ("popularity", "cooccurrence", "mf", "text")


class RecommendConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str = Field("minilm", description="backbone that embeds the item text")
    mf: Literal["als", "bpr"] = Field("als", description="implicit's matrix factorisation")
    factors: int = Field(64, ge=2, le=1024)
    mf_iterations: int = Field(15, ge=1, le=500)
    mf_regularization: float = Field(0.05, ge=0)
    mf_alpha: float = Field(2.0, gt=0, description="ALS confidence of an interaction: 1 + alpha")
    candidates_per_signal: int = Field(100, ge=1, le=10_000, description=(
        "each signal's top items for a user; their union is what the ranker orders (the other "
        "items follow, by the text/popularity blend)"))
    recent: int = Field(5, ge=1, le=100, description="last interactions behind the 'recent' "
                                                     "features")
    cold_holdout: float = Field(0.1, ge=0, lt=0.5, description=(
        "share of items whose interactions are hidden from the signals while the ranker "
        "learns, so it learns to place items known only by their text"))
    cold_holdout_by: Literal["newest", "random"] = Field("newest", description=(
        "which items the hold-out hides: the newest (by first interaction: real cold-start "
        "items are new ones, so the ranker learns how new items are taken up) or a random "
        "draw"))
    cold_candidates: int = Field(20, ge=0, le=10_000, description=(
        "items without interactions added to each user's candidates (the best by text and by "
        "text-mapped MF score), so the ranker can place a new item in a top list; 0: none"))
    new_places: int | Literal["auto"] = Field("auto", description=(
        "places of each list kept for the best-ranked items without interactions (a 'new "
        "arrivals' policy: new items get seen before their first clicks, at a measured cost to "
        "the warm items' hit rate, see benchmarks/README.md); 0: the ranker's order alone; "
        "'auto' (default): the fewest places of a top 10 at which, on validation inside the "
        "training data (each user's last interaction held out, the newest items hidden), new "
        "items' HR@10 reaches new_target times the warm items' (the same share of a longer or "
        "shorter list)"))
    new_target: float = Field(0.5, ge=0, le=1, description=(
        "with new_places=auto: new items' HR@10 as a share of the warm items' to reach "
        "(0.5: new items are hit at least half as often as items with a history)"))
    new_places_max: int = Field(5, ge=0, le=10, description=(
        "with new_places=auto: at most this many of the 10 places; if the target needs more, "
        "this many are kept and the fit notes it"))
    ranker_valid_users: float = Field(0.2, gt=0, lt=0.5, description=(
        "share of users whose held-out interaction validates the ranker (early stopping)"))
    ranker_rounds: int = Field(400, ge=1, le=10_000)
    ranker_learning_rate: float = Field(0.05, gt=0, le=1)
    ranker_leaves: int = Field(31, ge=2, le=1024)
    early_stopping: int = Field(30, ge=1)
    search: Literal["auto", "flat", "hnsw"] = "auto"
    hnsw_above: int = Field(200_000, ge=1)
    bandit: Literal["linucb", "lints"] = Field("linucb", description=(
        "mabwiser policy choosing the text clusters of the exploration slots (?explore=true)"))
    bandit_alpha: float = Field(0.5, gt=0, description="LinUCB exploration (LinTS: its alpha)")
    bandit_clusters: int = Field(20, ge=2, le=1000, description="arms: k-means clusters of the "
                                                                "item text embeddings")
    bandit_slots: int = Field(2, ge=1, le=50, description="places of a list given to exploration")
    seed: int = 0

    @field_validator("new_places")
    @classmethod
    def _places(cls, v):
        if isinstance(v, int) and not 0 <= v <= 50:
            raise ValueError(f"new_places={v}: give 0 to 50 places, or 'auto'")
        return v


def build(values: dict[str, Any]) -> RecommendConfig:
    return validate(RecommendConfig, values, "recommender")
