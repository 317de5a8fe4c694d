"""Masking personal data before anything is stored or logged (the assistant's conversations,
the prediction log).

The service's request-log masking (``serving.logging.mask``: e-mail addresses, phone, card,
IBAN, passport and ID numbers, secrets) plus what support conversations add: account numbers
named as such ("account 12345678", "a/c no. 1234-5678", "账号 6222...") and any remaining run of
8 or more digits (order, customer or account numbers without a keyword). It errs on the side of
masking.
"""

from __future__ import annotations

import re

from .logging import mask as mask_common

_ACCOUNT = re.compile(r"(?i)((?:account|acct|a/c|iban|customer|member|账号|账户|卡号|户号)"
                      r"(?:\s*(?:no\.?|number|num|#|id))?\s*[:#：]?\s*)([A-Z]{0,4}[\d][\d -]{4,30}\d)")
_DATE = re.compile(r"(?:19|20)\d{2}-(?:0?[1-9]|1[0-2])-(?:0?[1-9]|[12]\d|3[01])")
_LONG_DIGITS = re.compile(r"(?<![\dA-Za-z])\d(?:[ -]?\d){7,}(?![\dA-Za-z])")


def mask(text: str | None) -> str | None:
    if not text:
        return text
    text = _ACCOUNT.sub(lambda m: m.group(1) + "[ACCOUNT]", text)
    text = mask_common(text)
    return _LONG_DIGITS.sub(lambda m: m.group(0) if _DATE.fullmatch(m.group(0)) else "[NUMBER]",
                            text)


def mask_deep(value):
    """``mask`` applied to every string inside a JSON-like value."""
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict):
        return {k: mask_deep(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_deep(v) for v in value]
    return value
