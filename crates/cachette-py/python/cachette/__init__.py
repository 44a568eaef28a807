"""cachette for Python: Redis and in-memory caching for asyncio on cachette's Rust core.

The spec's ``cache`` module: ``from cache import cached, cache_evict, cached_property,
CacheManager`` (the same objects are importable from ``cachette``)."""
from . import _cachette
from ._cachette import (
    KEY_FORMAT_VERSION,
    CacheConfigError,
    CacheError,
    CacheInputError,
    args_hash,
    default_key,
)
from ._decorators import cache_evict, cached, cached_property
from ._manager import CacheManager, default_manager, install

__all__ = [
    "CacheManager",
    "cached",
    "cache_evict",
    "cached_property",
    "default_manager",
    "install",
    "default_key",
    "args_hash",
    "CacheError",
    "CacheConfigError",
    "CacheInputError",
    "KEY_FORMAT_VERSION",
]
