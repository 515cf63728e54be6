"""Image work with Pillow only: no HTTP, no configuration objects.

The public face of the package; the modules behind it are one step each::

    scan.py      scan_container                                   (structures counted before Pillow)
    decode.py    open_source, read_orientation, reduce_on_load,   (limits checked from the header)
                 valid_icc_profile
    geometry.py  plan_geometry, decode_size, displayed_size       (pure arithmetic)
    steps.py     orient, normalize_mode, strip_metadata, smart_focus, resize, apply_filters, pad,
                 flatten (finish_frame: the ones after decoding), Effects
    animation.py animated_frames, render_animation                 (every frame through the steps)
    encode.py    choose_format, EncoderSettings, encode
    intermediate.py  read_facts, decode_class, decode_intermediate,  (a source decoded once per M/8
                 thumbnail_from                                    class; JPEG scaled by simplejpeg)
    pipeline.py  render_thumbnail running the steps in order; render_from an intermediate
    facts.py     open_for_facts, read_facts, blurhash, dominant_color   (/info: one small decode)
    errors.py    ImageError > UndecodableImage > ContainerBomb; ImageError > SourceTooLarge
"""

from server.imaging.decode import (
    DECODE_ERRORS,
    EXIF_ORIENTATION,
    SourceLimits,
    open_source,
    read_orientation,
    reduce_on_load,
    valid_icc_profile,
)
from server.imaging.encode import EncoderSettings, choose_format, encode
from server.imaging.errors import ContainerBomb, ImageError, SourceTooLarge, UndecodableImage
from server.imaging.geometry import FITS, GRAVITIES, NEEDS_BOTH_SIDES, Box, box_problem, Geometry, decode_size, displayed_size, plan_geometry
from server.imaging.pipeline import RENDERER_VERSION, Rendered, RenderRequest, render_thumbnail
from server.imaging.scan import MAX_JPEG_SCANS, scan_container
from server.imaging.steps import (
    Effects, apply_filters, flatten, normalize_mode, orient, pad, resize, smart_focus, strip_metadata,
)
from server.imaging.animation import animated_frames, animation_peak

__all__ = [
    "DECODE_ERRORS", "EXIF_ORIENTATION", "FITS", "GRAVITIES", "Effects", "animated_frames", "animation_peak",
    "apply_filters", "pad", "smart_focus", "NEEDS_BOTH_SIDES", "box_problem", "MAX_JPEG_SCANS", "RENDERER_VERSION",
    "Box", "ContainerBomb", "EncoderSettings", "Geometry", "ImageError", "Rendered", "RenderRequest", "SourceLimits",
    "SourceTooLarge", "UndecodableImage",
    "choose_format", "decode_size", "displayed_size", "encode", "flatten", "normalize_mode", "open_source",
    "orient", "plan_geometry", "read_orientation", "reduce_on_load", "render_thumbnail", "resize",
    "scan_container", "strip_metadata", "valid_icc_profile",
]
