"""``python -m ronghe.serving BUNDLE_OR_DIR... [options]``: the service without the ronghe CLI.

The same as ``ronghe serve`` (which calls ``server.run`` too); every ``ServeConfig`` knob has a flag.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import RongheError
from .config import ServeConfig


def main(argv: list[str] | None = None) -> int:
    fields = ServeConfig.model_fields
    ap = argparse.ArgumentParser(prog="python -m ronghe.serving",
                                 description="Serve ronghe bundles over HTTP.")
    ap.add_argument("models", nargs="+", metavar="BUNDLE_OR_DIR",
                    help="bundle folder, folder of versions, or NAME=PATH")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--api-keys", default=None, metavar="FILE",
                    help="JSON/YAML keys file (also: RONGHE_API_KEYS)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--insecure", action="store_true",
                    help="allow a non-loopback address without API keys")
    ap.add_argument("--inference-threads", type=int, default=None,
                    help="threads per model call, torch's and onnxruntime's [default: the usable "
                         "cores / workers, at least 1]")
    for name in ("max_batch_size", "max_wait_ms", "max_queue", "max_texts_per_request",
                 "max_chars_per_text", "max_body_bytes", "max_images_per_request",
                 "max_image_bytes", "max_image_pixels", "max_image_body_bytes",
                 "request_timeout_s", "header_timeout_s",
                 "body_timeout_s", "max_connections", "watch_interval_s", "shutdown_timeout_s"):
        f = fields[name]
        ap.add_argument("--" + name.replace("_", "-"), type=type(f.default), default=None,
                        help=f"{f.description or ''} [default: {f.default}]")
    ap.add_argument("--version-order", choices=["name", "mtime"], default=None)
    ap.add_argument("--request-log", default=None, help="'-' (stderr, default), a file, or 'off'")
    ap.add_argument("--log-inputs", action="store_true", help="log inputs (PII-masked)")
    ap.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                    help="any other serve option, e.g. header_timeout_s=5 (repeatable)")
    args = vars(ap.parse_args(argv))
    import yaml

    extra = {}
    for item in args.pop("option"):
        key, sep, value = item.partition("=")
        if not sep:
            ap.error(f"--option {item!r} must look like KEY=VALUE")
        extra[key.strip().replace("-", "_")] = yaml.safe_load(value)
    models = args.pop("models")
    fixed = {k: args.pop(k) for k in ("host", "port", "api_keys", "workers", "insecure")}
    options = {k: v for k, v in args.items() if v is not None and v is not False}  # 0 is a value
    if options.get("request_log") == "off":
        options["request_log"] = None
    options.update(extra)
    import logging

    from .server import run

    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")
    try:
        run(models, **fixed, **options)
    except RongheError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
