"""The assistant's routes, added to ``ronghe serve``'s app (its keys, limits, metrics, reload,
error format and request log apply):

    POST /v1/assist/reply                {"conversation_id", "message", "message_id"?}
    POST /v1/assist/feedback             {"conversation_id", "turn_id", "helpful",
                                          "correct_intent"?, "correct_faq_id"?, "comment"?}
    GET  /v1/assist/conversations/{id}   the stored (masked) turns with their feedback
    GET  /v1/assist/info                 the assistant's intents and FAQ ids (for the page)
    GET  /                               the chat page (static files from this package; open
                                         without a key: it holds no data, its calls need one)

The assistant is a served model like any other (``LOADERS["assistant"]``): replies go through
the model's micro-batcher, versions hot-reload, ``/v1/models`` lists it. Each reply and each
feedback is committed in its own transaction before the answer is sent.
"""

from __future__ import annotations

import json
import logging
from importlib import resources
from typing import Annotated

from fastapi import APIRouter, FastAPI, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from starlette.concurrency import run_in_threadpool

from ...serving.app import _info, error_response, submit
from ...serving.registry import register_loader
from . import storage
from .privacy import mask

log = logging.getLogger("ronghe.serving")
TASK = "assistant"
STATIC = ("index.html", "app.js", "style.css")
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8"}


class ServingAssistant:
    """What the registry serves for an assistant bundle: ``predict(messages) -> replies``."""

    accepts = ("texts",)

    def __init__(self, bot):
        self.bot = bot

    def predict(self, messages: list[str]) -> list[dict]:
        try:
            return self.bot.reply_many(list(messages))
        finally:
            forget(messages)


def forget(messages: list[str]) -> None:
    """Drop the messages' embeddings from the process-wide per-text cache (``modeling``): it
    serves training, where texts repeat; a service sees each message once, and would otherwise
    keep every customer's message embedding in memory."""
    import sys

    modeling = sys.modules.get("ronghe.modeling")
    if modeling is None:
        return
    keys = [modeling.text_key(m) for m in messages]
    for cache in modeling._EMBED_CACHE.values():
        for k in keys:
            cache.pop(k, None)


def load_predictor(path) -> ServingAssistant:
    from .assistant import Assistant

    return ServingAssistant(Assistant.load(path))


register_loader(TASK, load_predictor)

Id = Annotated[str, StringConstraints(min_length=1, max_length=128,
                                      pattern=r"^[A-Za-z0-9._:-]+$")]


class ReplyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    conversation_id: Id = Field(description="your id for the conversation (letters, digits, "
                                            "'.', '_', ':', '-')")
    message: Annotated[str, StringConstraints(min_length=1, max_length=10_000)]
    message_id: Id | None = Field(None, description="idempotency key: the same message id in "
                                                    "a conversation is answered and stored once")


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    conversation_id: Id
    turn_id: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    helpful: bool
    correct_intent: Annotated[str, StringConstraints(max_length=200)] | None = None
    correct_faq_id: Annotated[str, StringConstraints(max_length=200)] | None = None
    comment: Annotated[str, StringConstraints(max_length=2000)] | None = None


def install(app: FastAPI, service, *, model: str, db: str) -> None:
    """Add the assistant's routes for the served model ``model``, storing in ``db``."""
    store = storage.open_store(db)
    svc, config = service, service.config
    router = APIRouter(prefix="/v1/assist", tags=["assist"])
    service.add_path(r"^/v1/assist/reply/?$", "assist_reply", model)
    service.add_path(r"^/v1/assist/feedback/?$", "assist_feedback", model)
    service.add_path(r"^/v1/assist/conversations/[^/]+/?$", "assist_conversation", model)
    service.add_path(r"^/v1/assist/info/?$", "assist_info", model)
    service.add_path(r"^/(?:assist/static/[A-Za-z0-9_.-]+)?$", "assist_page", None, True)

    def current(request: Request):
        slot = svc.registry.get(model)
        if slot is None or slot.current is None:
            return None, error_response(request, 503, "model_loading", f"the assistant "
                                        f"'{model}' is still loading; retry shortly",
                                        {"Retry-After": "2"})
        return slot.current, None

    async def stored(request: Request, fn, *args, **kwargs):
        """Run a storage call off the event loop; (result, None) or (None, a 503 answer) when
        the database cannot be reached - nothing is answered as if it had been stored."""
        import sqlalchemy as sa

        try:
            return await run_in_threadpool(fn, store, *args, **kwargs), None
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as e:
            log.error("assistant '%s': the database is unavailable: %s", model,
                      type(e).__name__)
            return None, error_response(request, 503, "storage_unavailable", "the conversation "
                                        "store is unavailable; retry shortly",
                                        {"Retry-After": "5"})

    def as_json(payload: dict, status: int = 200) -> Response:
        return Response(json.dumps(payload, ensure_ascii=False, separators=(",", ":")),
                        status_code=status, media_type="application/json")

    @router.post("/reply", summary="answer a message and store the turn")
    async def reply(request: Request, body: ReplyRequest):
        info = _info(request.scope)
        info["n_inputs"] = 1
        if config.log_inputs:
            info["inputs"] = [mask(body.message)]
        if body.message_id:
            found, err = await stored(request, storage.find_turn, body.conversation_id,
                                      body.message_id)
            if err:
                return err
            if found:
                return as_json({**_public(found), "replayed": True})
        loaded, err = current(request)
        if err:
            return err
        answer = await submit(svc, request, model, loaded, [body.message],
                              timeout_s=config.request_timeout_s, who="the assistant")
        if isinstance(answer, Response):
            return answer
        results, batch = answer
        info["batch_size"], info["version"] = batch, loaded.version
        answer = results[0]
        saved, err = await stored(
            request, storage.save_turn, assistant=model, version=loaded.version,
            conversation_id=body.conversation_id, message_id=body.message_id,
            message=body.message, reply=answer)
        if err:
            return err
        turn, new = saved
        if not new:  # the same message id raced in: the stored answer is the answer
            return as_json({**_public(turn), "replayed": True})
        return as_json({**_public(turn), "reply": answer["reply"], "why": answer["why"],
                        "options": answer.get("options", []), "replayed": False})

    @router.post("/feedback", summary="helpful or not, with the right intent or FAQ id")
    async def feedback(request: Request, body: FeedbackRequest):
        loaded, err = current(request)
        if err:
            return err
        bot = loaded.predictor.bot
        if body.correct_intent and body.correct_intent not in set(bot.intents_) | {"oos"}:
            return error_response(request, 422, "unknown_intent", f"correct_intent "
                                  f"'{body.correct_intent[:100]}' is not an intent of this "
                                  "assistant (nor 'oos'); GET /v1/assist/info lists them")
        if body.correct_faq_id and body.correct_faq_id not in bot.faq_:
            return error_response(request, 422, "unknown_faq_id", f"correct_faq_id "
                                  f"'{body.correct_faq_id[:100]}' is not a FAQ id of this "
                                  "assistant; GET /v1/assist/info lists them")
        if body.correct_intent and body.correct_faq_id:
            return error_response(request, 422, "invalid_request", "give correct_intent or "
                                  "correct_faq_id, not both")
        conv, err = await stored(request, storage.conversation, body.conversation_id)
        if err:
            return err
        if conv is None or body.turn_id not in {t["turn_id"] for t in conv["turns"]}:
            return error_response(request, 404, "turn_not_found", f"no turn "
                                  f"'{body.turn_id[:40]}' in conversation "
                                  f"'{body.conversation_id[:60]}'")
        saved, err = await stored(
            request, storage.save_feedback, turn_id=body.turn_id, helpful=body.helpful,
            correct_intent=body.correct_intent, correct_faq_id=body.correct_faq_id,
            comment=body.comment)
        return err or as_json(saved)

    @router.get("/conversations/{conversation_id}", summary="a conversation's stored turns")
    async def get_conversation(request: Request,
                               conversation_id: Annotated[str, Path(max_length=128)]):
        conv, err = await stored(request, storage.conversation, conversation_id)
        if err:
            return err
        if conv is None:
            return error_response(request, 404, "conversation_not_found",
                                  f"no conversation '{conversation_id[:60]}'")
        return as_json(conv)

    @router.get("/info", summary="the assistant's intents and FAQ ids")
    async def assistant_info(request: Request):
        loaded, err = current(request)
        if err:
            return err
        bot = loaded.predictor.bot
        return as_json({"name": model, "version": loaded.version, "intents": bot.intents_,
                        "faq": [{"id": e.id, "question": e.questions[0]}
                                for e in bot.faq_.values()]})

    app.include_router(router)

    @app.get("/", include_in_schema=False)
    async def page():
        return _static("index.html")

    @app.get("/assist/static/{name}", include_in_schema=False)
    async def static(request: Request, name: str):
        if name not in STATIC:
            return error_response(request, 404, "not_found", f"no such file: {name[:60]}")
        return _static(name)


def _static(name: str) -> Response:
    data = resources.files(__package__).joinpath("static", name).read_bytes()
    suffix = name[name.rfind("."):]
    return Response(data, media_type=_TYPES[suffix],
                    headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff",
                             "Content-Security-Policy": "default-src 'self'; "
                                                        "frame-ancestors 'none'"})


def _public(turn: dict) -> dict:
    """A stored turn as the reply endpoint answers it."""
    return {"conversation_id": turn["conversation_id"], "turn_id": turn["turn_id"],
            "message_id": turn["message_id"], "reply": turn["reply"], "kind": turn["kind"],
            "intent": turn["intent"], "faq_id": turn["faq_id"], "handoff": turn["handoff"],
            "why": turn["why"],
            "options": ([turn["why"]["intent"]["label"], turn["why"]["intent"]["runner_up"]]
                        if turn["kind"] == "clarify" else []),
            "version": turn["assistant_version"]}
