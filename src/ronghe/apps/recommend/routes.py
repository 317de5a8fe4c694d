"""The recommender's routes, added to ``ronghe serve``'s app (its keys, limits, metrics, reload,
error format and request log apply):

    GET  /v1/recommend/{user}?k=10         the k best unseen items, each with the signals that
                                           ranked it (``reasons``); an unknown user gets the
                                           popular and fresh items; ``&explore=true``: the
                                           bandit (``bandit.py``) fills a few places
    POST /v1/recommend/similar             {"item": id} or {"text": "..."}, "k"?
    POST /v1/recommend/feedback            {"events": [{"event_id", "user", "item",
                                           "kind": "impression" | "click"}]}: stored once per
                                           event_id; a click joins the user's history at
                                           once; on an explored item it updates the bandit
    POST /v1/recommend/items               {"items": [{"id", "text", "features"?}]}: stored,
                                           embedded and recommendable at once

The recommender is a served model like any other (``LOADERS["recommender"]``; its ``predict``
takes texts and answers the similar items). A freshly loaded version (a start, a reload) first
takes in the items and clicks stored in the database, so nothing sent before is lost.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Annotated, Literal

from fastapi import APIRouter, FastAPI, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from starlette.concurrency import run_in_threadpool

from ...serving.app import _info, error_response
from ...serving.registry import register_loader
from . import storage

log = logging.getLogger("ronghe.serving")
TASK = "recommender"


class ServingRecommender:
    """What the registry serves for a recommender bundle; one lock orders reads and changes."""

    accepts = ("texts",)

    def __init__(self, rec):
        self.rec = rec
        self.lock = threading.Lock()
        self.synced = False
        self.explorer = None
        self.shown: dict[str, tuple] = {}  # user -> (history, {item position: arm}) last explored

    def explore(self, user: str | None, k: int) -> list[dict]:
        """A list with exploration slots chosen by the bandit (built on first use)."""
        from .bandit import Explorer

        rec, cfg = self.rec, self.rec.config
        if self.explorer is None:
            self.explorer = Explorer(rec, policy=cfg.bandit, alpha=cfg.bandit_alpha,
                                     clusters=cfg.bandit_clusters, slots=cfg.bandit_slots,
                                     seed=cfg.seed)
        items, explored = self.explorer.slate(user, k)
        if user is not None:
            self.shown[user] = (rec.hist_[rec.user_pos_[user]].copy(), explored)
        scores, _ = rec.full_ranking(user)
        out = []
        for pos in items:
            out.append({"item": rec.item_ids_[pos], "score": round(float(scores[pos]), 6),
                        "cold": bool(rec.signals_.counts[pos] == 0),
                        "explored": pos in explored,
                        **({"reasons": [{"signal": "exploration", "arm": explored[pos]}]}
                           if pos in explored else {})})
        return out

    def learn(self, user: str, item: str, kind: str) -> None:
        """Feedback on an explored item: a click rewards its arm (1), an impression does not (0)."""
        if self.explorer is None or user not in self.shown:
            return
        hist, explored = self.shown[user]
        pos = self.rec.item_pos_.get(item)
        if pos in explored:
            self.explorer.update(hist, {pos: explored[pos]}, {pos} if kind == "click" else set())

    def predict(self, texts: list[str]) -> list[dict]:
        with self.lock:
            return [{"similar": self.rec.similar(text=t, k=10)} for t in texts]

    def warmup(self) -> None:
        with self.lock:
            self.rec.recommend(None, 10)
            self.rec.similar(text="ronghe warm-up", k=1)


def load_predictor(path) -> ServingRecommender:
    from threadpoolctl import threadpool_limits

    from .recommender import Recommender

    # one BLAS thread: a user's scores are small matrix products, where thread hand-offs cost
    # more than they save (and the service's cores serve concurrent requests)
    threadpool_limits(1, "blas")
    return ServingRecommender(Recommender.load(path))


register_loader(TASK, load_predictor)

Id = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]+$")]


class Event(BaseModel):
    model_config = ConfigDict(extra="forbid")
    event_id: Annotated[str, StringConstraints(min_length=1, max_length=128)] = Field(
        description="idempotency key: an event id is stored once")
    user: Id
    item: Id
    kind: Literal["impression", "click"]


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: list[Event] = Field(min_length=1, max_length=1000)


class NewItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: Id
    text: Annotated[str, StringConstraints(min_length=1, max_length=10_000)]
    features: dict[str, float | None] = {}


class ItemsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[NewItem] = Field(min_length=1, max_length=256)


class SimilarRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    item: Id | None = None
    text: Annotated[str, StringConstraints(min_length=1, max_length=10_000)] | None = None
    k: int = Field(10, ge=1, le=100)


def install(app: FastAPI, service, *, model: str, db: str) -> None:
    """Add the recommender's routes for the served model ``model``, storing in ``db``."""
    store = storage.open_store(db)
    svc = service
    router = APIRouter(prefix="/v1/recommend", tags=["recommend"])
    service.add_path(r"^/v1/recommend/similar/?$", "recommend_similar", model)
    service.add_path(r"^/v1/recommend/feedback/?$", "recommend_feedback", model)
    service.add_path(r"^/v1/recommend/items/?$", "recommend_items", model)
    service.add_path(r"^/v1/recommend/[^/]+/?$", "recommend_user", model)  # after the above

    def sync(pred: ServingRecommender) -> None:
        """Bring a freshly loaded version up to date with the database (once per version)."""
        with pred.lock:
            if pred.synced:
                return
            added = storage.stored_items(store, model)
            if added:
                pred.rec.add_items([i["id"] for i in added], [i["text"] for i in added],
                                   [i["features"] for i in added])
            for user, item in storage.clicks(store, model):
                pred.rec.add_interaction(user, item)
            pred.synced = True

    async def current(request: Request):
        import sqlalchemy as sa

        slot = svc.registry.get(model)
        if slot is None or slot.current is None:
            return None, error_response(request, 503, "model_loading", f"the recommender "
                                        f"'{model}' is still loading; retry shortly",
                                        {"Retry-After": "2"})
        pred = slot.current.predictor
        _info(request.scope)["version"] = slot.current.version
        if not pred.synced:
            try:
                await run_in_threadpool(sync, pred)
            except (sa.exc.OperationalError, sa.exc.InterfaceError):
                return None, unavailable(request)
        return slot.current, None

    def unavailable(request: Request) -> Response:
        log.error("recommender '%s': the database is unavailable", model)
        return error_response(request, 503, "storage_unavailable", "the feedback store is "
                              "unavailable; retry shortly", {"Retry-After": "5"})

    async def stored(request: Request, fn, *args):
        import sqlalchemy as sa

        try:
            return await run_in_threadpool(fn, store, model, *args), None
        except (sa.exc.OperationalError, sa.exc.InterfaceError):
            return None, unavailable(request)

    def as_json(payload: dict) -> Response:
        return Response(json.dumps(payload, ensure_ascii=False, separators=(",", ":")),
                        media_type="application/json")

    def locked(pred, fn, *args, **kwargs):
        with pred.lock:
            return fn(*args, **kwargs)

    @router.get("/{user}", summary="the best unseen items for a user, with reasons")
    async def recommend(request: Request, user: Annotated[str, Path(max_length=200)],
                        k: Annotated[int, Query(ge=1, le=100)] = 10,
                        explore: Annotated[bool, Query(description="let the bandit fill a few "
                                                       "places with exploration")] = False,
                        new_places: Annotated[int | None, Query(ge=0, le=100, description=(
                            "places kept for items without interactions (default: the "
                            "recommender's new_places)"))] = None):
        loaded, err = await current(request)
        if err:
            return err
        pred = loaded.predictor
        rec = pred.rec
        known = user in rec.user_pos_
        if explore:
            items = await run_in_threadpool(locked, pred, pred.explore, user if known else None, k)
        else:
            if new_places is not None and new_places > k:
                return error_response(request, 422, "invalid_request", f"new_places "
                                      f"{new_places} is more than k={k}")
            items = await run_in_threadpool(locked, pred, rec.recommend, user if known else None,
                                            k, new_places=new_places)
        return as_json({"user": user, "known_user": known, "version": loaded.version,
                        "items": items})

    @router.post("/similar", summary="items nearest to an item's text or to a free text")
    async def similar(request: Request, body: SimilarRequest):
        if (body.item is None) == (body.text is None):
            return error_response(request, 422, "invalid_request", "give 'item' or 'text', "
                                  "not both")
        loaded, err = await current(request)
        if err:
            return err
        rec = loaded.predictor.rec
        if body.item is not None and body.item not in rec.item_pos_:
            return error_response(request, 404, "unknown_item", f"no item '{body.item[:60]}'; "
                                  "add it with POST /v1/recommend/items")
        found = await run_in_threadpool(locked, loaded.predictor, rec.similar, item=body.item,
                                        text=body.text, k=body.k)
        return as_json({"items": found, "version": loaded.version})

    @router.post("/feedback", summary="impressions and clicks (stored once per event_id)")
    async def feedback(request: Request, body: FeedbackRequest):
        loaded, err = await current(request)
        if err:
            return err
        pred = loaded.predictor
        unknown = [i for i, e in enumerate(body.events) if e.item not in pred.rec.item_pos_]
        if unknown:
            return error_response(request, 422, "unknown_item", f"events {unknown[:10]} name "
                                  "items this recommender does not know; add them first with "
                                  "POST /v1/recommend/items",
                                  details=[{"loc": ["events", i, "item"]} for i in unknown[:10]])
        events = [e.model_dump() for e in body.events]
        new, err = await stored(request, storage.save_events, events)
        if err:
            return err
        for e in new:
            await run_in_threadpool(locked, pred, pred.learn, e["user"], e["item"], e["kind"])
            if e["kind"] == "click":
                await run_in_threadpool(locked, pred, pred.rec.add_interaction, e["user"],
                                        e["item"])
        _info(request.scope)["n_inputs"] = len(events)
        return as_json({"stored": len(new), "duplicates": len(events) - len(new)})

    @router.post("/items", summary="new items, recommendable at once from their text")
    async def add_items(request: Request, body: ItemsRequest):
        loaded, err = await current(request)
        if err:
            return err
        pred = loaded.predictor
        new = [i.model_dump() for i in body.items]
        saved, err = await stored(request, storage.save_items, new)
        if err:
            return err
        added = await run_in_threadpool(locked, pred, pred.rec.add_items,
                                        [i["id"] for i in new], [i["text"] for i in new],
                                        [i["features"] for i in new])
        return as_json({"added": added, "known": [i["id"] for i in new if i["id"] not in added]})

    app.include_router(router)
