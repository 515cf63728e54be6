"""Displayed sizes of a batch of originals, found in one render-process job (the gallery's grid).

    displayed_sizes(originals, sources, limits, budget_s)   runs in a render process

Each source is opened through the store (`OriginalStore.open`: exactly the version `source`
names, as renders read it), only its first `PREFIX_BYTES` are read, and
`server.imaging.sizes` parses the header there: no image is parsed on the event loop, and no
pixel is decoded. The job stops starting files after `budget_s` and returns the sizes found so
far: the files it did not reach are tried again at the next page view.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from server.imaging import SourceLimits
from storage import NotFound, OriginalStore, Source, SourceChanged

#: A file's result: its displayed size, or None when it has none to show (undecodable, not
#: servable, changed since it was resolved, or its prefix does not tell).
Size = tuple[int, int] | None


def displayed_sizes(originals: OriginalStore, sources: Sequence[Source], limits: SourceLimits,
                    budget_s: float) -> list[Size]:
    """Runs in a render process: the displayed size of each of `sources`, in order, for as many
    as fit in `budget_s` (the list may be shorter than `sources`). Announces a small peak first
    (each file holds a prefix and header objects, one file at a time)."""
    from server.imaging.sizes import PREFIX_BYTES, SIZE_PEAK_BYTES, displayed_size_of
    from server.thumbnails.pool import announce_peak

    announce_peak(SIZE_PEAK_BYTES)
    stop = time.monotonic() + budget_s
    found: list[Size] = []
    for source in sources:
        if found and time.monotonic() > stop:
            break
        try:
            file = originals.open(source)
        except (NotFound, SourceChanged):
            found.append(None)
            continue
        with file:
            prefix = file.read(PREFIX_BYTES)

            def read_at(offset: int, size: int) -> bytes:
                file.seek(offset)
                return file.read(size)

            size = displayed_size_of(prefix, source.size, limits, read_at)
            if not originals.unchanged(source, file):
                size = None
        found.append(size)
    return found
