"""The `ResultStore` protocol for shared result tiers, the entry they keep, and `MemoryResultStore`.

A result store keeps encoded thumbnails by the hex digest of their result key: bytes plus the
metadata needed to answer for them (media type, ETag, the source's mtime, the variant's Vary).
Never HTTP heads: those are the memory tier's business. Every implementation runs the one
contract suite in `tests/contract/`, unchanged.

Errors:

    UnusableStore       a tier that cannot be used as configured (raised at construction or by
                        `check()`): start-up stops with its message, one line
    CorruptEntry        bytes that are not a whole `StoredResult`; stores drop such an entry and
                        answer a miss, so callers only meet it through `StoredResult.from_bytes`
    ValueError          a key that is not a lowercase hex digest (a caller's bug)
    OSError, redis errors, TimeoutError
                        a tier failing at run time; `GuardedStore` turns every one into a miss
"""

from __future__ import annotations

import json
import re
import secrets
import struct
import time
from dataclasses import dataclass
from hashlib import blake2b
from typing import Any, Protocol, runtime_checkable

#: Layout version of `StoredResult.to_bytes`; part of every shared key, so an old layout is never read.
LAYOUT_VERSION = 1
_MAGIC = b"TSR%d" % LAYOUT_VERSION
_HEAD = struct.Struct(">4sI")  # magic, metadata length


#: What a key looks like: a lowercase hex digest (BLAKE2b-128 is 32 characters, SHA-512 128).
DIGEST_PATTERN = re.compile(r"[0-9a-f]{32,128}")
_NAMESPACE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}")


class CorruptEntry(ValueError):
    """Bytes that are not a whole, intact `StoredResult` (torn write, bit rot, another layout)."""


class UnusableStore(Exception):
    """A shared tier that cannot be used as configured; the message names what and why."""


def checked_digest(digest: str) -> str:
    """`digest` if it is a lowercase hex digest of 32 to 128 characters, else `ValueError`.

    Stores build file names and keys from it, so nothing else may get through.
    """
    if not isinstance(digest, str) or DIGEST_PATTERN.fullmatch(digest) is None:
        raise ValueError(f"not a lowercase hex digest of 32 to 128 characters: {digest!r:.80}")
    return digest


def checked_namespace(namespace: str) -> str:
    """`namespace` if it is 1 to 64 of `A-Za-z0-9_.-` not starting with a dot, else `ValueError`."""
    if not isinstance(namespace, str) or _NAMESPACE.fullmatch(namespace) is None:
        raise ValueError(f"a namespace is 1 to 64 of A-Z a-z 0-9 _ . - not starting with '.': {namespace!r:.80}")
    return namespace


@dataclass(frozen=True, slots=True)
class StoredResult:
    """An encoded thumbnail and what is needed to serve it."""

    body: bytes
    media_type: str
    etag: str
    source_mtime_ns: int
    vary: str | None = None

    @property
    def size(self) -> int:
        return len(self.body)

    def to_bytes(self) -> bytes:
        """magic, metadata length, metadata JSON (with the body's length and checksum), body."""
        # The fields by hand: `asdict` deep-copies each one (a third of a put's CPU).
        meta = {"media_type": self.media_type, "etag": self.etag, "source_mtime_ns": self.source_mtime_ns,
                "vary": self.vary, "length": len(self.body),
                "checksum": blake2b(self.body, digest_size=16).hexdigest()}
        encoded = json.dumps(meta, separators=(",", ":"), sort_keys=True).encode()
        return _HEAD.pack(_MAGIC, len(encoded)) + encoded + self.body

    @classmethod
    def from_bytes(cls, data: bytes) -> StoredResult:
        """The entry `to_bytes` wrote, or `CorruptEntry` if `data` is not exactly that."""
        if len(data) < _HEAD.size:
            raise CorruptEntry("shorter than a header")
        magic, meta_length = _HEAD.unpack_from(data)
        if magic != _MAGIC or _HEAD.size + meta_length > len(data):
            raise CorruptEntry("bad magic or metadata length")
        try:
            meta = json.loads(data[_HEAD.size : _HEAD.size + meta_length])
            body = data[_HEAD.size + meta_length :]
            if len(body) != meta.pop("length") or blake2b(body, digest_size=16).hexdigest() != meta.pop("checksum"):
                raise CorruptEntry("length or checksum mismatch")
            return cls(body=body, **meta)
        except (ValueError, KeyError, TypeError) as error:
            raise CorruptEntry(str(error)) from None


@runtime_checkable
class ResultStore(Protocol):
    """A tier shared by every worker (and node). Keys are hex digests of result keys.

    `get` returns None on a miss; an entry found corrupt is deleted and reported as a miss.
    Failures (unreachable, full, slow) raise `OSError`, `TimeoutError` or a store-specific error;
    the caller (through `GuardedStore`) treats any failure as a miss and serves anyway.

    `lock(digest, ttl_s)` is the render lock shared by every process on the same backing: True
    if this caller got it. It expires by itself after `ttl_s`, so a holder that died blocks
    nobody for longer. `unlock(digest)` releases it only if this store object still holds it.

    `stats()` answers cheap facts for /healthz: at least `kind` and `reachable`.
    `check()` is start-up's question: raises `UnusableStore` if the tier cannot be used now.
    """

    kind: str

    async def get(self, digest: str) -> StoredResult | None: ...

    async def put(self, digest: str, result: StoredResult) -> None: ...

    async def lock(self, digest: str, ttl_s: float) -> bool: ...

    async def unlock(self, digest: str) -> None: ...

    async def stats(self) -> dict[str, Any]: ...

    async def check(self) -> None: ...

    async def close(self) -> None: ...


class MemoryResultStore:
    """A `ResultStore` in a dict: the reference implementation, for tests and one-process use.

    Its locks are shared by the callers of this one object only.
    """

    kind = "memory"

    def __init__(self) -> None:
        self._entries: dict[str, bytes] = {}
        self._locks: dict[str, tuple[str, float]] = {}  # digest -> (token, monotonic expiry)
        self._held: dict[str, str] = {}  # digest -> token, for the locks this object took

    async def get(self, digest: str) -> StoredResult | None:
        data = self._entries.get(checked_digest(digest))
        if data is None:
            return None
        try:
            return StoredResult.from_bytes(data)
        except CorruptEntry:
            del self._entries[digest]
            return None

    async def put(self, digest: str, result: StoredResult) -> None:
        self._entries[checked_digest(digest)] = result.to_bytes()

    async def lock(self, digest: str, ttl_s: float) -> bool:
        now = time.monotonic()
        held = self._locks.get(checked_digest(digest))
        if held is not None and held[1] > now:
            return False
        token = secrets.token_hex(16)
        self._locks[digest] = (token, now + ttl_s)
        self._held[digest] = token
        return True

    async def unlock(self, digest: str) -> None:
        token = self._held.pop(checked_digest(digest), None)
        held = self._locks.get(digest)
        if token is not None and held is not None and held[0] == token:
            del self._locks[digest]

    async def stats(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "reachable": True,
            "entries": len(self._entries),
            "bytes": sum(map(len, self._entries.values())),
        }

    async def check(self) -> None:
        return None

    async def close(self) -> None:
        self._entries.clear()
        self._locks.clear()
        self._held.clear()

    def __len__(self) -> int:
        return len(self._entries)
