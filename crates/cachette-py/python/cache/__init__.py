"""The spec's module name: ``from cache import cached, cache_evict, cached_property, CacheManager``.

Everything here is :mod:`cachette`'s (same objects, not copies)."""
from cachette import *  # noqa: F401,F403
from cachette import __all__  # noqa: F401
