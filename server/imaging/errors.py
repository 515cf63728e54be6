"""What can go wrong with a source image, and what a client may be told about it.

    ImageError              .public_message is safe to show a client (422)
    ├── UndecodableImage    corrupt, truncated, empty, not an image, or a refused decoder
    │   └── ContainerBomb   more container structures than any real image holds (scan.py)
    └── SourceTooLarge      over SourceLimits.max_bytes or .max_pixels (checked before decoding)
"""

from __future__ import annotations


class ImageError(Exception):
    """A source that cannot be made into a thumbnail.

    `str(error)` is the internal detail for logs; `public_message` is safe to show a client
    (no paths, no Pillow internals).
    """

    public_message = "The source cannot be made into a thumbnail."

    def __init__(self, detail: str, *, public_message: str | None = None) -> None:
        super().__init__(detail)
        if public_message is not None:
            self.public_message = public_message


class UndecodableImage(ImageError):
    """Corrupt, truncated, empty, not an image, or in a format whose decoder is not allowed."""

    public_message = "The source is not an image that can be decoded."


class ContainerBomb(UndecodableImage):
    """A container with more markers, chunks, strips, scans or blocks than any real image holds:
    refused by a structural scan before Pillow walks them (seconds and hundreds of MB each)."""

    public_message = "The source's structure is too complex to decode."


class SourceTooLarge(ImageError):
    """Over the byte or pixel limit; raised before any pixel is decoded."""

    public_message = "The source image is too large."

    @classmethod
    def pixels(cls, width: int, height: int, max_pixels: int) -> SourceTooLarge:
        """The error for a `width` x `height` source over `max_pixels`."""
        return cls(
            f"{width}x{height} pixels > {max_pixels}",
            public_message=f"The source image is larger than {max_pixels} pixels.",
        )

