"""The prediction log: what a served model predicted, kept in a database for drift checks
(``ronghe drift --from-db``). Opt-in: ``ronghe serve ... --option prediction_log=preds.sqlite``
(or a ``postgresql://`` URL).

Every path that answers through ``app.submit`` (``/v1/models/{name}/predict``, the assistant's
replies) writes one row per input, in the request, before the answer is sent (so an answered
prediction is on disk even after ``kill -9``); the monitor writes the sentiment prediction of
each item it stores (model ``monitor-sentiment``) after the item's own commit. A row: time,
model, version, predicted label, its score, all class probabilities, and a compact input
summary - length in characters and words, the share of words the model's tokenizer does not
hold as one piece (``oov_rate``), and the embedding projected to ``DIMS`` numbers (a fixed
random projection: distances are roughly kept, the text cannot be read back). Raw text only
with ``prediction_log_text=true``, and then masked (``privacy.mask``). A failing log write is
logged and counted, never fails the prediction.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import numpy as np

log = logging.getLogger("ronghe.serving")

DIMS = 8
APP, VERSION = "predictions", 1
_WORD = re.compile(r"\w+", re.UNICODE)


def table(metadata):
    import sqlalchemy as sa

    return sa.Table(
        "ronghe_predictions", metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("model", sa.String(64), nullable=False, index=True),
        sa.Column("version", sa.String(200)),
        sa.Column("label", sa.String(200)),
        sa.Column("score", sa.Float),
        sa.Column("probabilities", sa.Text),  # JSON {label: p}
        sa.Column("length", sa.Integer),
        sa.Column("words", sa.Integer),
        sa.Column("oov_rate", sa.Float),
        sa.Column("embedding", sa.Text),  # JSON list of DIMS floats
        sa.Column("text", sa.Text),  # masked; only with prediction_log_text
    )


def project(embeddings: np.ndarray, dims: int = DIMS) -> np.ndarray:
    """A fixed Gaussian random projection (seeded by the input width, so the reference data in
    ``ronghe drift`` and the service project alike), scaled to keep distances."""
    emb = np.asarray(embeddings, dtype=np.float64)
    rng = np.random.default_rng(emb.shape[1])
    return emb @ rng.normal(size=(emb.shape[1], dims)) / np.sqrt(dims)


def outcome(record: dict) -> tuple[Any, float | None, dict | None]:
    """(label, score, probabilities) of a prediction record or an assistant reply."""
    if "label" in record:
        return record["label"], record.get("score"), record.get("probabilities")
    intent = (record.get("why") or {}).get("intent") or {}
    return intent.get("label"), intent.get("score"), None


def _parts(predictor):
    """(tokenizer vocabulary or None, embed function or None) of a served predictor or an
    estimator."""
    est = getattr(predictor, "estimator", predictor)
    inner = getattr(est, "strategy_", None)
    embed = getattr(inner, "embed", None) or getattr(getattr(predictor, "bot", None), "embed", None)
    tok = getattr(inner, "tokenizer", None)
    if tok is None and hasattr(inner, "_embedder"):
        tok = inner._embedder().tokenizer
    vocab = None
    if tok is not None and hasattr(tok, "get_vocab"):
        vocab = tok.get_vocab()
    return vocab, embed


def summaries(predictor, texts: list[str], with_text: bool) -> list[dict]:
    from .privacy import mask

    vocab, embed = _parts(predictor)
    emb = None
    if embed is not None:
        try:
            emb = project(np.asarray(embed(list(texts))))
        except Exception:  # noqa: BLE001 - the summary is optional; the prediction stands
            log.warning("prediction log: embedding the inputs failed", exc_info=True)
    out = []
    for i, t in enumerate(texts):
        words = _WORD.findall(t)
        oov = None
        if vocab is not None and words:
            oov = sum(1 for w in words if w.lower() not in vocab and w not in vocab) / len(words)
        out.append({"length": len(t), "words": len(words), "oov_rate": oov,
                    "embedding": None if emb is None else json.dumps(
                        [round(float(x), 5) for x in emb[i]]),
                    "text": mask(t) if with_text else None})
    return out


class PredictionLog:
    def __init__(self, url: str, *, with_text: bool = False):
        import sqlalchemy as sa

        from ..store import Store

        self.store = Store(url)
        self.table = table(sa.MetaData())
        self.store.migrate(APP, self.table.metadata, VERSION)
        self.with_text = with_text
        self.failures = 0

    def write(self, name: str, version: str, predictor, inputs: list, results: list) -> int:
        """One row per text input (other kinds - tokens, images - are not logged) of model
        ``name`` at ``version``; ``predictor`` (a served predictor or an estimator) gives the
        vocabulary and embeddings of the input summaries."""
        import sqlalchemy as sa

        from ..store import now

        if not inputs or not isinstance(inputs[0], str):
            return 0
        try:
            at = now()
            rows = []
            for s, rec in zip(summaries(predictor, inputs, self.with_text), results):
                label, score, proba = outcome(rec)
                rows.append({"created_at": at, "model": name, "version": version,
                             "label": None if label is None else str(label), "score": score,
                             "probabilities": None if proba is None else json.dumps(proba),
                             **s})
            with self.store.transaction() as conn:
                conn.execute(sa.insert(self.table), rows)
            return len(rows)
        except Exception:  # noqa: BLE001 - logging must never fail a prediction
            self.failures += 1
            log.error("prediction log: writing %d rows failed", len(inputs), exc_info=True)
            return 0

    def read(self, model: str | None = None, since=None, limit: int | None = None) -> list[dict]:
        import sqlalchemy as sa

        t = self.table
        q = sa.select(t).order_by(t.c.id)
        if model:
            q = q.where(t.c.model == model)
        if since is not None:
            q = q.where(t.c.created_at >= since)
        if limit:
            q = q.limit(limit)
        with self.store.transaction() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def close(self) -> None:
        self.store.close()
