"""Where originals come from: URL paths turned into files inside the image root, or refused.

Knows nothing of HTTP: it returns data (`Source`) or raises `NotFound`; the server picks statuses.
"""

from storage.files import NotFound, Source, SourceChanged, identity_of, open_regular, read_source, resolve

__all__ = ["NotFound", "Source", "SourceChanged", "identity_of", "open_regular", "read_source", "resolve"]
