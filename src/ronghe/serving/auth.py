"""API keys: where they come from, how they are kept, how a request is checked.

Keys file (``--api-keys FILE``, JSON or YAML) or the ``RONGHE_API_KEYS`` environment variable hold a
mapping from a key's *name* (what the request log shows) to its entry::

    billing-service:
      key: "s3cr3t-at-least-16-chars"   # plaintext: hashed on load and dropped
      models: ["sentiment"]              # or "*" (the default): every model
      rate_per_minute: 600               # optional; bursts up to one minute's allowance
    dashboard:
      sha256: "9f86d08..."               # or only the digest: the file then holds no secret
      models: "*"

A bare string value is a plaintext key for every model. ``RONGHE_API_KEYS`` may also be a
comma-separated list of plaintext keys (names ``key1``, ``key2`` ...; every model). A digest can be
made with ``python -m ronghe.serving.auth hash``.

Only sha256 digests are kept in memory and in the config; a presented key is hashed and compared
with every stored digest using ``hmac.compare_digest`` (no early exit), so timing does not tell
which key or how much of it matched. Keys are read from ``Authorization: Bearer KEY`` or
``X-API-Key: KEY``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import stat
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import ConfigError

ENV_VAR = "RONGHE_API_KEYS"
MIN_KEY_LENGTH = 16


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class ApiKey(BaseModel):
    """One configured key, as kept: its name, sha256 digest, models and rate limit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=128)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    models: list[str] | Literal["*"] = "*"
    rate_per_minute: float | None = Field(None, gt=0)

    @field_validator("sha256", mode="before")
    @classmethod
    def _lower(cls, v):
        return v.lower() if isinstance(v, str) else v

    def allows(self, model: str) -> bool:
        return self.models == "*" or model in self.models


def _entry(name: str, value: Any, source: str) -> ApiKey:
    if isinstance(value, str):
        value = {"key": value}
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: key '{name}' must be a string or a mapping with 'key' or "
                          f"'sha256', 'models' and 'rate_per_minute', got {type(value).__name__}")
    value = dict(value)
    unknown = set(value) - {"key", "sha256", "models", "rate_per_minute"}
    if unknown:
        raise ConfigError(f"{source}: key '{name}' has unknown field(s) {sorted(unknown)}; allowed: "
                          "key, sha256, models, rate_per_minute")
    plain = value.pop("key", None)
    if (plain is None) == (value.get("sha256") is None):
        raise ConfigError(f"{source}: key '{name}' needs exactly one of 'key' (plaintext) or "
                          "'sha256' (hex digest of the key)")
    if plain is not None:
        if not isinstance(plain, str) or len(plain) < MIN_KEY_LENGTH:
            raise ConfigError(f"{source}: key '{name}' is shorter than {MIN_KEY_LENGTH} characters; "
                              "make one with: python -c \"import secrets; "
                              "print(secrets.token_urlsafe(32))\"")
        value["sha256"] = hash_key(plain)
    models = value.get("models", "*")
    if isinstance(models, str) and models != "*":
        value["models"] = [models]
    try:
        return ApiKey(name=name, **value)
    except ValidationError as e:
        msgs = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        raise ConfigError(f"{source}: key '{name}': {msgs}") from None


def parse_keys(data: Any, source: str) -> list[ApiKey]:
    """Entries from a parsed keys mapping (see the module docstring)."""
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"{source}: expected a non-empty mapping of key names to entries, e.g. "
                          "{\"my-app\": {\"key\": \"...\", \"models\": \"*\"}}")
    return [_entry(str(name), value, source) for name, value in data.items()]


def _parse_text(text: str, source: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)  # YAML is a superset of JSON
    except yaml.YAMLError as e:
        raise ConfigError(f"{source} is neither valid JSON nor YAML: {e}") from None


def load_keys(path: str | os.PathLike | None = None,
              env: dict[str, str] | None = None) -> list[ApiKey]:
    """Keys from ``path`` and/or the ``RONGHE_API_KEYS`` variable of ``env`` (default: os.environ)."""
    env = os.environ if env is None else env
    keys: list[ApiKey] = []
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise ConfigError(f"API keys file not found: {p}")
        text = p.read_text(encoding="utf-8")
        data = json.loads(text) if p.suffix == ".json" and text.strip() else _parse_text(text, str(p))
        keys += parse_keys(data, str(p))
        if isinstance(data, dict) and any(isinstance(v, str) or (isinstance(v, dict) and "key" in v)
                                          for v in data.values()):
            mode = p.stat().st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                from ..log import warn

                warn("%s holds plaintext API keys and is readable by other users; run chmod 600 "
                     "on it or store 'sha256' digests instead", p)
    raw = env.get(ENV_VAR, "").strip()
    if raw:
        data = _parse_text(raw, f"${ENV_VAR}")
        if isinstance(data, dict):
            keys += parse_keys(data, f"${ENV_VAR}")
        else:
            plain = [k.strip() for k in raw.split(",") if k.strip()]
            keys += [_entry(f"key{i}", k, f"${ENV_VAR}") for i, k in enumerate(plain, 1)]
    names = [k.name for k in keys]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"API key name(s) defined twice: {', '.join(dupes)}")
    digests = [k.sha256 for k in keys]
    if len(set(digests)) != len(digests):
        raise ConfigError("the same API key is configured under two names; give each client its own")
    return keys


class _Bucket:
    __slots__ = ("tokens", "stamp")

    def __init__(self, tokens: float, stamp: float):
        self.tokens = tokens
        self.stamp = stamp


class Keyring:
    """Checks presented keys and rate limits. Used from the event loop only (no locking needed)."""

    def __init__(self, keys: list[ApiKey], clock=time.monotonic):
        self._keys = [(bytes.fromhex(k.sha256), k) for k in keys]
        self._buckets: dict[str, _Bucket] = {}
        self._clock = clock

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def authenticate(self, presented: str | None) -> ApiKey | None:
        """The entry whose key was presented, or ``None``. Every stored digest is compared."""
        if not presented:
            return None
        try:
            raw = presented.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            return None
        digest = hashlib.sha256(raw).digest()
        found = None
        for stored, entry in self._keys:
            if hmac.compare_digest(digest, stored):
                found = entry
        return found

    def rate_check(self, key: ApiKey) -> float:
        """0 when the request may go ahead (and uses a token), else seconds until it may."""
        if not key.rate_per_minute:
            return 0.0
        now = self._clock()
        per_s = key.rate_per_minute / 60.0
        b = self._buckets.get(key.name)
        if b is None:
            b = self._buckets[key.name] = _Bucket(key.rate_per_minute, now)
        b.tokens = min(key.rate_per_minute, b.tokens + (now - b.stamp) * per_s)
        b.stamp = now
        if b.tokens >= 1.0:
            b.tokens -= 1.0
            return 0.0
        return (1.0 - b.tokens) / per_s


def retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


class ConflictingCredentials(ValueError):
    """A request carrying two different keys (``Authorization`` and ``X-API-Key``)."""


def key_from_headers(headers: dict[bytes, bytes] | list[tuple[bytes, bytes]]) -> str | None:
    """The key in ``Authorization: Bearer KEY`` or ``X-API-Key: KEY`` (raw ASGI headers).
    Different keys in one request raise ``ConflictingCredentials``: which one counts must never
    depend on header order, and a valid key does not excuse a wrong one beside it."""
    items = headers.items() if isinstance(headers, dict) else headers
    found = set()
    for name, value in items:
        n = name.lower()
        if n == b"authorization":
            scheme, _, token = value.decode("utf-8", "surrogateescape").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                found.add(token.strip())
        elif n == b"x-api-key" and value.strip():
            found.add(value.decode("utf-8", "surrogateescape").strip())
    if len(found) > 1:
        raise ConflictingCredentials("the request carries different API keys")
    return next(iter(found), None)


def _main(argv: list[str] | None = None) -> int:  # python -m ronghe.serving.auth hash
    import argparse
    import getpass
    import sys

    ap = argparse.ArgumentParser(prog="python -m ronghe.serving.auth",
                                 description="print the sha256 digest of an API key (read from "
                                             "stdin or a prompt) for the keys file")
    ap.add_argument("command", choices=["hash"])
    ap.parse_args(argv)
    key = sys.stdin.readline().rstrip("\n") if not sys.stdin.isatty() else getpass.getpass("key: ")
    print(hash_key(key))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(_main())
