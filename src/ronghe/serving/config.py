"""``ServeConfig``: every setting of the service in one validated place.

The CLI, ``server.run`` and ``create_app`` all go through it; with ``--workers N`` it travels to
each worker process as JSON in an environment variable (API keys only as sha256 digests).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import ConfigError
from ..machine import available_cores
from .auth import ApiKey


class ServeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    models: list[str] = Field(min_length=1, description="bundle folders or folders of versions; "
                                                        "NAME=PATH sets the name")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=64, description="uvicorn worker processes; each loads its "
                                                     "own copy of every model")
    insecure: bool = Field(False, description="allow a non-loopback address without API keys")
    api_keys: list[ApiKey] = Field(default_factory=list, description="hashed keys; empty = open")

    # micro-batching
    max_batch_size: int = Field(32, ge=1, le=4096, description="items per model call, never more")
    max_wait_ms: float = Field(2.0, ge=0, le=1000, description="how long the first queued item "
                                                               "waits for others to join its batch")
    max_queue: int = Field(1024, ge=1, description="items waiting per model; beyond: 503")
    inference_threads: int | None = Field(None, ge=1, le=256, description=(
        "threads per model call, torch's and onnxruntime's (process-wide); `ronghe serve` "
        "default: the cores this process may use, divided among the worker processes - each "
        "model answers one batch at a time, so its call may take every core (on 2 cores, 2 "
        "threads answered 8 clients 1.4x faster than 1 with an int8 model: benchmarks/README.md, "
        "serving). Lower it when other busy processes share the cores"))

    # limits
    max_texts_per_request: int = Field(256, ge=1)
    max_chars_per_text: int = Field(10_000, ge=1)
    max_body_bytes: int = Field(1 << 20, ge=1024, description="JSON bodies for text models")
    # image models (base64 JSON or multipart upload)
    max_images_per_request: int = Field(32, ge=1)
    max_image_bytes: int = Field(10 << 20, ge=1024, description="one encoded image file")
    max_image_pixels: int = Field(40_000_000, ge=1, description=(
        "width x height of one image; larger ones (and decompression bombs) are refused before "
        "they are decoded"))
    max_image_body_bytes: int = Field(64 << 20, ge=1024, description=(
        "a request to a model that takes images (base64 adds a third to the files' size)"))
    request_timeout_s: float = Field(30.0, gt=0, description="for the model's answer")
    header_timeout_s: float = Field(10.0, gt=0, description="a connection's request line and "
                                                             "headers must arrive within this")
    body_timeout_s: float = Field(10.0, gt=0, description="a request's body must arrive within "
                                                           "this; else 408 and the connection closes")
    max_connections: int = Field(512, ge=1, description="open connections (and requests) at once; "
                                                         "beyond: 503")

    # versions and reload
    watch_interval_s: float = Field(2.0, ge=0, description="poll for new versions; 0 = off")
    version_order: Literal["name", "mtime"] = Field(
        "name", description="newest version: highest folder name (natural order: v2 < v10) or "
                            "latest ronghe.json modification time")

    # applications that add routes to this app (e.g. the assistant): "module:install" ->
    # its options; ``install(app, service, **options)`` runs once the app is built
    apps: dict[str, dict[str, Any]] = Field(default_factory=dict, description=(
        "applications adding routes: 'module:function' -> keyword options"))

    # request log and shutdown
    request_log: str | None = Field("-", description="'-' = stderr, a file path, or off")
    log_inputs: bool = Field(False, description="add the (PII-masked) inputs to the request log")
    shutdown_timeout_s: float = Field(30.0, ge=0, description="grace period for in-flight requests")

    # prediction log (predlog.py): off unless a database is given
    prediction_log: str | None = Field(None, description="database (file path or URL) where "
                                       "every text prediction is logged, for ronghe drift "
                                       "--from-db")
    prediction_log_text: bool = Field(False, description="also log each input text, masked")

    @field_validator("request_log")
    @classmethod
    def _log_off(cls, v):
        return None if v is None or str(v).strip().lower() in ("off", "none", "") else v

    @model_validator(mode="after")
    def _consistent(self):
        if self.max_texts_per_request > self.max_queue:
            raise ValueError(f"max_texts_per_request ({self.max_texts_per_request}) must not exceed "
                             f"max_queue ({self.max_queue}): such a request could never be queued")
        if self.max_images_per_request > self.max_queue:
            if "max_images_per_request" in self.model_fields_set:
                raise ValueError(f"max_images_per_request ({self.max_images_per_request}) must "
                                 f"not exceed max_queue ({self.max_queue})")
            self.max_images_per_request = self.max_queue  # the default, under a small queue
        return self

    @property
    def auth_enabled(self) -> bool:
        return bool(self.api_keys)

    def for_process(self) -> "ServeConfig":
        """The config a server process runs with: defaults that depend on the machine filled in."""
        if self.inference_threads:
            return self
        return self.model_copy(update={"inference_threads": default_inference_threads(self.workers)})


def build(values: dict[str, Any]) -> ServeConfig:
    """A ``ServeConfig`` from plain values; pydantic's errors become one readable ``ConfigError``."""
    try:
        return ServeConfig.model_validate(values)
    except ValidationError as e:
        lines = []
        for err in e.errors():
            loc = ".".join(str(x) for x in err["loc"]) or "serve config"
            lines.append(f"{loc}: {err['msg']}")
        raise ConfigError("invalid serve option(s):\n  " + "\n  ".join(lines)) from None


def default_inference_threads(workers: int = 1) -> int:
    """The cores this process may run on, shared among ``workers``."""
    return max(1, available_cores() // max(1, workers))
