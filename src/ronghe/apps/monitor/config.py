"""``MonitorConfig``: every setting of the monitor in one validated place (YAML file or flags).

Kept apart from the implementation: ``ronghe monitor run monitor.yaml --option ...`` and the
Python API both build one of these, and pydantic's errors become one readable ``ConfigError``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ...errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelsConfig(_Strict):
    topic: str | None = Field(None, description="topic classifier bundle (its label is a watch "
                                                "key: topic=LABEL)")
    sentiment: str = Field(description="sentiment classifier bundle: decides what is negative")
    ner: str | None = Field(None, description="NER bundle: its entities of `entity_types` become "
                                              "watch keys (entity=ORG:Name)")
    negative_labels: list[str] | None = Field(None, description=(
        "sentiment labels that count as negative [default: the bundle's label named negative, "
        "neg, 0, 负面 or 消极]"))
    entity_types: list[str] = Field(["ORG", "PER"], description="NER types that become keys")
    batch_size: int = Field(64, ge=1, le=4096, description="items scored per model call")


class RuleConfig(_Strict):
    """What to watch and how to decide that its negative share surged."""

    name: str | None = Field(None, description="[default: the key kind]")
    key: str = Field(description="'topic' (the topic model's label), 'entity' (NER entities) "
                                 "or 'meta.FIELD' (a field of the item's meta, e.g. meta.ticker)")
    method: Literal["cusum", "binomial"] = Field("cusum", description=(
        "cusum: Bernoulli CUSUM against the key's EWMA baseline, reset after an alarm; "
        "binomial: one-sided binomial test of the window against the baseline "
        "(chosen from measurements: see the README's Monitoring section)"))
    window: int = Field(100, ge=10, le=10_000, description="the key's last N items: the sliding "
                                                           "window an alert reports")
    min_count: int = Field(200, ge=0, description="items of a key seen before any test")
    halflife: float = Field(2000, gt=0, description="half-life (items of the key) of the EWMA "
                                                    "baseline of its negative share")
    ratio: float = Field(2.0, gt=1, description="the surge to detect: negative share x ratio "
                                                "(CUSUM's alternative)")
    threshold: float = Field(12.0, gt=0, description="CUSUM alarm level (log-likelihood "
                                                     "ratio; 12: chosen in benchmarks/monitor.py)")
    alpha: float = Field(1e-5, gt=0, lt=1, description="binomial test: alarm when p < alpha "
                                                        "(1e-5: benchmarks/monitor.py)")
    min_excess: float = Field(0.05, ge=0, le=1, description="binomial test: the window's share "
                                                            "must exceed the baseline by this too")
    cooldown: int = Field(200, ge=0, description="items of the key after an alarm without "
                                                 "another; the baseline restarts from the "
                                                 "window's share")
    reset: bool = Field(True, description="after an alarm: CUSUM back to 0 and the baseline "
                                          "restarts from the window's share (off: the classic "
                                          "CUSUM that keeps re-alerting after a level shift)")
    max_keys: int = Field(10_000, ge=1, description="keys tracked at once; the least recently "
                                                    "seen is forgotten beyond this")
    top_texts: int = Field(5, ge=0, le=50, description="negative texts kept as an alert's evidence")

    @property
    def label(self) -> str:
        return self.name or self.key


class SourcesConfig(_Strict):
    folder: str | None = Field(None, description="watched for new JSONL/CSV files (also .jsonl.gz "
                                                 "is not supported: files are read as they grow)")
    stdin: bool = Field(False, description="read JSON lines from standard input")
    poll_s: float = Field(1.0, gt=0, description="seconds between looks at the folder")


class WebhookConfig(_Strict):
    url: str
    retries: int = Field(4, ge=0, le=20)
    backoff_s: float = Field(0.5, ge=0, description="first wait; doubled after each failure")
    timeout_s: float = Field(5.0, gt=0)


class SinksConfig(_Strict):
    log: bool = Field(True, description="one warning line per alert (key, shares, score)")
    webhooks: list[WebhookConfig] = Field(default_factory=list)


class ServeOptions(_Strict):
    enabled: bool = Field(False, description="serve the ingest API and the dashboard")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    api_keys: str | None = Field(None, description="keys file (as for ronghe serve)")
    insecure: bool = False
    max_queue: int = Field(10_000, ge=1, description="items waiting to be scored; beyond: 503")
    max_items_per_request: int = Field(1000, ge=1)
    options: dict[str, Any] = Field(default_factory=dict, description=(
        "further `ronghe serve` settings, e.g. {max_body_bytes: 8388608, request_log: off}"))


class MonitorConfig(_Strict):
    db: str = Field("monitor.sqlite", description="SQLite file path or postgresql:// URL")
    models: ModelsConfig
    sources: SourcesConfig = Field(default_factory=SourcesConfig)
    rules: list[RuleConfig] = Field(default_factory=lambda: [RuleConfig(key="topic")])
    sinks: SinksConfig = Field(default_factory=SinksConfig)
    serve: ServeOptions = Field(default_factory=ServeOptions)
    bucket_s: int = Field(3600, ge=1, description="width of the dashboard's time buckets")
    max_text_chars: int = Field(10_000, ge=1, description="longer texts are rejected")

    @model_validator(mode="after")
    def _consistent(self):
        names = [r.label for r in self.rules]
        if len(set(names)) != len(names):
            raise ValueError(f"rules need distinct names (got {names}); set `name:` on each")
        for r in self.rules:
            if r.key == "topic" and not self.models.topic:
                raise ValueError("a rule watches 'topic' but models.topic (a topic bundle) "
                                 "is not set")
            if r.key == "entity" and not self.models.ner:
                raise ValueError("a rule watches 'entity' but models.ner (an NER bundle) is "
                                 "not set")
            if r.key not in ("topic", "entity") and not (r.key.startswith("meta.")
                                                         and len(r.key) > 5):
                raise ValueError(f"rule key {r.key!r}: use 'topic', 'entity' or 'meta.FIELD'")
        return self


def _set(data: dict, dotted: str, value) -> None:
    parts = dotted.split(".")
    for p in parts[:-1]:
        data = data.setdefault(p, {})
        if not isinstance(data, dict):
            raise ConfigError(f"option {dotted!r}: {p} is not a section")
    data[parts[-1]] = value


def build(values: dict, overrides: dict | None = None) -> MonitorConfig:
    """A config from a mapping (a parsed file) plus dotted overrides (``models.topic=...``,
    ``rules.0.threshold=8``); errors name the setting and what it takes."""
    import copy

    data = copy.deepcopy(values)
    for k, v in (overrides or {}).items():
        parts = k.split(".")
        if parts[0] == "rules" and len(parts) > 2 and parts[1].isdigit():
            rules = data.setdefault("rules", [{"key": "topic"}])
            i = int(parts[1])
            if i >= len(rules):
                raise ConfigError(f"option {k!r}: there are only {len(rules)} rules")
            _set(rules[i], ".".join(parts[2:]), v)
        else:
            _set(data, k, v)
    try:
        return MonitorConfig.model_validate(data)
    except ValidationError as e:
        lines = []
        for err in e.errors():
            loc = ".".join(str(x) for x in err["loc"]) or "config"
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown setting"
            lines.append(f"{loc}: {msg}" + (f" (got {err['input']!r})" if err["type"] not in
                                            ("missing", "extra_forbidden", "value_error")
                                            else ""))
        raise ConfigError("invalid monitor configuration:\n  " + "\n  ".join(lines)) from None
