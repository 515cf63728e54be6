"""Result keys: canonical bytes name every input; digests are stable and unambiguous."""

from __future__ import annotations

from server.imaging import EncoderSettings
from server.thumbnails import ResultKey

ENCODER = EncoderSettings().describe()


def key(**changes) -> ResultKey:
    fields = {"source": "a/b.jpg", "identity": (100, 5), "spec": "320x,contain", "format": "webp", "encoder": ENCODER}
    return ResultKey(**{**fields, **changes})


class TestResultKey:
    """Each field changes the digest; equal fields give equal digests and one memory-tier slot."""

    def test_every_field_counts(self) -> None:
        variants = [key(), key(source="a/c.jpg"), key(identity=(100, 6)), key(spec="320x,cover"), key(format="avif"),
                    key(encoder=EncoderSettings(avif_speed=6).describe()), key(renderer="0")]
        assert len({variant.digest for variant in variants}) == len(variants)

    def test_equal_keys_are_one(self) -> None:
        assert key() == key() and hash(key()) == hash(key()) and key().digest == key().digest
        assert key().etag == f'"{key().digest}"' and len(key().digest) == 32

    def test_a_path_cannot_forge_another_field(self) -> None:
        assert key(source='a","b').digest != key(source="a", spec='b",' + "320x,contain").digest

    def test_encoder_description_names_every_setting(self) -> None:
        described = {EncoderSettings(**change).describe() for change in (
            {}, {"qualities": {"jpeg": 30, "webp": 80, "avif": 60}}, {"jpeg_progressive": True}, {"jpeg_optimize": True},
            {"png_compress_level": 9}, {"webp_method": 6}, {"avif_speed": 4}, {"metadata": "none"})}
        assert len(described) == 8
