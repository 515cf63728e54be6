"""Where originals come from: URL paths turned into files inside the image root, or refused.

Knows nothing of HTTP: it returns data (`Source`) or raises `NotFound`; the server picks statuses.
"""

from storage.files import NotFound, Source, SourceChanged, read_source, resolve

__all__ = ["NotFound", "Source", "SourceChanged", "read_source", "resolve"]
