"""What a thumbnail request means, with no HTTP: the spec grammar, result keys and ETags,
format negotiation, the service (memory tier -> shared tier -> render) and the render pool.

Errors raised here and mapped to statuses by `server.http.errors`:
    InvalidSpec        400  spec.py: bad grammar, size or allow-list
    RenderUnavailable  503  pool.py: queue full or deadline passed
    BadSignature       403  signing.py: a URL that must be signed is not, or badly
"""

from server.thumbnails.keys import SOURCE_FAMILY, ResultKey
from server.thumbnails.negotiation import negotiate_format
from server.thumbnails.pool import RenderPool, RenderUnavailable
from server.thumbnails.service import Plan, ServiceEvents, ThumbnailOptions, ThumbnailService
from server.thumbnails.signing import BadSignature, Signer
from server.thumbnails.spec import InvalidSpec, Preset, SpecRules, ThumbSpec, parse_spec

__all__ = [
    "SOURCE_FAMILY", "BadSignature", "InvalidSpec", "Signer", "Plan", "Preset", "RenderPool", "RenderUnavailable", "ResultKey", "ServiceEvents", "SpecRules",
    "ThumbnailOptions", "ThumbnailService", "ThumbSpec", "negotiate_format", "parse_spec",
]
