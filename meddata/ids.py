"""Deterministic 63-bit ids, so every worker derives the same id for the same source object."""

from __future__ import annotations

import hashlib
import hmac

_MASK = (1 << 63) - 1


def stable_id(namespace: str, *parts: object, key: bytes | None = None) -> int:
    """A positive int64 id for ``parts`` within ``namespace``; keyed by HMAC when ``key`` is given."""
    message = "\x1f".join([namespace, *(str(p) for p in parts)]).encode("utf-8")
    if key is None:
        digest = hashlib.blake2b(message, digest_size=8).digest()
    else:
        digest = hmac.new(key, message, hashlib.sha256).digest()[:8]
    value = int.from_bytes(digest, "big") & _MASK
    return value or 1
