"""Signed URLs, imgproxy's scheme, so its URL-building libraries work unchanged.

The signature of `{prefix}/{signature}/{rest}` is
`base64url(HMAC-SHA256(key, salt + "/" + rest))` without `=` padding, truncated to `size`
bytes before encoding, where `rest` is the raw path after the signature (still
percent-encoded, no query). Any configured (key, salt) pair may match, so keys can be rotated;
comparisons are constant-time. The signature is never part of a result key or an ETag.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence


class BadSignature(Exception):
    """A URL that must be signed is not, or its signature matches no configured key (403)."""


class Signer:
    """Signs and verifies the rest of a path with (key, salt) pairs given in hex."""

    def __init__(self, keys: Sequence[str], salts: Sequence[str], *, size: int = 32) -> None:
        if not keys or len(keys) != len(salts):
            raise ValueError("at least one key, and one salt per key")
        if not 1 <= size <= 32:
            raise ValueError("size is 1 to 32 bytes")
        self._pairs = [(bytes.fromhex(key), bytes.fromhex(salt)) for key, salt in zip(keys, salts, strict=True)]
        self._size = size

    def sign(self, rest: bytes) -> str:
        """The signature of `rest` with the first (current) key."""
        key, salt = self._pairs[0]
        return self._signature(key, salt, rest)

    def verify(self, signature: str, rest: bytes) -> None:
        """Nothing when `signature` signs `rest` with any pair; `BadSignature` otherwise."""
        given = signature.encode("ascii", "replace")
        matched = False
        for key, salt in self._pairs:
            # Every pair is compared (no early exit): the time does not tell which key matched.
            matched |= hmac.compare_digest(given, self._signature(key, salt, rest).encode())
        if not matched:
            raise BadSignature("the signature matches no configured key")

    def _signature(self, key: bytes, salt: bytes, rest: bytes) -> str:
        digest = hmac.new(key, salt + b"/" + rest, hashlib.sha256).digest()[: self._size]
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
