"""Result keys: the one name of a thumbnail's bytes, and the ETag derived from it.

A key holds everything that decides the encoded bytes: the source's path and identity (its
version), the normalised spec, the output format (or "source" when the source's family decides
it), every effective encoder setting (configured qualities, speed/effort, metadata policy) and
the renderer's version. Whether a thumbnail animates is decided by those too: the source, the
spec's `still`, the output format, and the animation limits (`limits.max_animation_frames`
and the pixel limit), which the service writes into the encoder part. The memory tier keys on
the `ResultKey` itself (hashing a few small fields); the shared tiers and the ETag use its
digest, which is the same on every node.
"""

from __future__ import annotations

import json
from functools import cached_property
from hashlib import blake2b
from typing import NamedTuple

from server.imaging import RENDERER_VERSION

#: The format part of a key when the request names none: the source decides, still deterministically.
SOURCE_FAMILY = "source"


class _KeyFields(NamedTuple):
    source: str
    identity: tuple[int, ...]
    spec: str
    format: str
    encoder: str
    renderer: str = RENDERER_VERSION


class ResultKey(_KeyFields):
    """The fields that decide a thumbnail's bytes.

    A tuple, so the memory tier's dict hashes and compares it in C on every hit; the digest is
    computed once per key object, only when a shared tier or a 304 without a cached entry needs it.
    """

    def canonical(self) -> bytes:
        """An unambiguous encoding of every field (JSON: no separator can be forged by a path)."""
        fields = [self.renderer, self.source, list(self.identity), self.spec, self.format, self.encoder]
        return json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode()

    @cached_property
    def digest(self) -> str:
        """32 hex characters: the name of these bytes in every tier and on every node."""
        return blake2b(self.canonical(), digest_size=16).hexdigest()

    @cached_property
    def etag(self) -> str:
        """The strong ETag of the thumbnail these bytes make."""
        return f'"{self.digest}"'
