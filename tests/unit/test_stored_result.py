"""`StoredResult.to_bytes` / `from_bytes`: the layout every shared tier keeps, field for field."""

from __future__ import annotations

import dataclasses
import json
import struct
from hashlib import blake2b

import pytest

from cache import StoredResult
from cache.store import LAYOUT_VERSION, CorruptEntry


@pytest.fixture
def result() -> StoredResult:
    return StoredResult(body=b"\xff\xd8 thumbnail bytes", media_type="image/webp", etag='"0123abcd"',
                        source_mtime_ns=1_700_000_000_123_456_789, vary="Accept")


class TestStoredResultLayout:
    """An entry's bytes hold every field, in the layout processes of the same version share."""

    def test_round_trip_keeps_every_field(self, result: StoredResult) -> None:
        assert StoredResult.from_bytes(result.to_bytes()) == result

    def test_metadata_names_every_field_but_the_body(self, result: StoredResult) -> None:
        data = result.to_bytes()
        _, length = struct.unpack_from(">4sI", data)
        meta = json.loads(data[8 : 8 + length])
        fields = {field.name for field in dataclasses.fields(StoredResult)} - {"body"}
        assert set(meta) == fields | {"length", "checksum"}

    def test_bytes_are_the_documented_layout(self, result: StoredResult) -> None:
        # What entries written by any process of this layout version look like: magic, metadata
        # length, sorted compact JSON with the body's length and BLAKE2b-128, then the body.
        meta = json.dumps({"checksum": blake2b(result.body, digest_size=16).hexdigest(), "etag": result.etag,
                           "length": len(result.body), "media_type": result.media_type,
                           "source_mtime_ns": result.source_mtime_ns, "vary": result.vary},
                          separators=(",", ":"), sort_keys=True).encode()
        expected = struct.pack(">4sI", b"TSR%d" % LAYOUT_VERSION, len(meta)) + meta + result.body
        assert result.to_bytes() == expected

    def test_a_changed_body_byte_is_corrupt(self, result: StoredResult) -> None:
        data = bytearray(result.to_bytes())
        data[-1] ^= 1
        with pytest.raises(CorruptEntry):
            StoredResult.from_bytes(bytes(data))
