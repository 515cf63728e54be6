"""The byte-bounded LRU of encoded thumbnails, with request coalescing.

HTTP-free: keys are tuples, values are whatever the server stores (sized by a function).
"""

from cache.lru import CacheStats, CoalescingCache

__all__ = ["CacheStats", "CoalescingCache"]
