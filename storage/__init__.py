"""Where originals come from. Knows nothing of HTTP: returns data (`Source`) or raises.

    FolderLister    folder listings for the gallery, by resolve's rules (storage.listing)
    OriginalStore   the protocol every store implements (storage.store)
    ├── FileStore   a folder on disk, resolved safely inside it (storage.files)
    └── MemoryStore a dict, for tests (storage.store)

    NotFound        missing, refused by a path rule, or unreadable
    SourceChanged   replaced or modified between resolving and reading
"""

from storage.files import FileStore, open_regular, read_source, resolve
from storage.fingerprints import Fingerprints, fingerprint_bytes
from storage.listing import FolderLister, FolderListing, natural_key
from storage.source import NotFound, Source, SourceChanged, check_lexically, holds, version_of
from storage.store import MemoryStore, OriginalStore

__all__ = [
    "FileStore", "FolderLister", "FolderListing", "natural_key", "MemoryStore", "NotFound", "OriginalStore", "Source", "SourceChanged",
    "Fingerprints", "check_lexically", "fingerprint_bytes", "holds", "version_of", "open_regular", "read_source", "resolve",
]
