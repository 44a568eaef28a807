"""``CacheManager``: the spec's manager on cachette's Rust core."""
import json
import threading
from typing import Any, Dict, Iterable, List, Optional

from . import _cachette as _native
from ._bridge import bridge as _bridge

_encoder = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
#: Python value -> JSON text, as ``json.dumps`` (compact, UTF-8, no NaN: the Rust crate and
#: redis-cli read the same text).
dumps = _encoder.encode

_SPEC_TTL = 3600
_SPEC_PREFIX = "cache:"

_natives: Dict[tuple, Any] = {}
_natives_lock = threading.Lock()
_default = None


def _native_for(spec: tuple):
    """One native manager (one connection pool) per distinct set of arguments."""
    with _natives_lock:
        native = _natives.get(spec)
        if native is None:
            redis_url, ttl, prefix, memory, breaker, near = spec
            kwargs = {}
            if ttl is not None:
                if ttl == "never":
                    kwargs["default_ttl_never"] = True
                else:
                    kwargs["default_ttl"] = float(ttl)
            if breaker is not None:
                kwargs["breaker_failures"], kwargs["breaker_open"] = breaker
            native = _native.Manager(
                redis_url=redis_url,
                key_prefix=prefix,
                memory=memory,
                near_cache=near,
                **kwargs,
            )
            _natives[spec] = native
        return native


class CacheManager:
    """Redis-based cache manager (the embedded memory backend when no Redis is configured).

    Features: key-value storage with TTL, pattern-based key deletion, JSON serialization,
    connection pooling (one multiplexed connection per distinct configuration, shared by every
    ``CacheManager`` built with the same arguments).

    Settings resolve as cachette's do: built-in defaults < ``config.json`` ``"redis"`` section
    (or the file named by ``CACHETTE_CONFIG``) < ``REDIS_*`` environment variables < the
    arguments. ``default_ttl=3600`` and ``key_prefix="cache:"`` are the built-in defaults, so
    passing exactly those leaves the configured values in force.

    Beyond the spec (keyword-only): ``memory=True`` forces the embedded backend;
    ``circuit_breaker=(failures, open_seconds)`` tunes the breaker (``(0, 0)`` turns it off);
    ``near_cache=True`` keeps a process-local copy of hot keys (Redis 6+ tracking).
    """

    def __init__(
        self,
        redis_url: str = None,
        default_ttl: int = 3600,
        key_prefix: str = "cache:",
        *,
        memory: bool = False,
        circuit_breaker: Optional[tuple] = None,
        near_cache: Optional[bool] = None,
    ):
        ttl = None if default_ttl == _SPEC_TTL else ("never" if default_ttl in (None, 0) else default_ttl)
        prefix = None if key_prefix == _SPEC_PREFIX else key_prefix
        breaker = tuple(circuit_breaker) if circuit_breaker is not None else None
        self._native = _native_for((redis_url, ttl, prefix, bool(memory), breaker, near_cache))
        global _default
        if _default is None:
            _default = self

    def __repr__(self):
        return f"CacheManager({self._native.describe()}, prefix={self._native.prefix!r})"

    # -- properties beyond the spec -------------------------------------------------------
    @property
    def key_prefix(self) -> str:
        return self._native.prefix

    @property
    def default_ttl(self) -> Optional[float]:
        return self._native.default_ttl

    @property
    def backend(self) -> str:
        """``"redis"``, ``"memory"``, ``"cluster"``, ..."""
        return self._native.backend

    def stats(self) -> dict:
        """Hits, misses, writes, errors, coalesced loads, stale copies served, fallbacks, the
        circuit breaker's state (``circuit``: ``closed``/``open``/``half_open``)..."""
        return self._native.stats()

    def full_key(self, key: str) -> str:
        return self._native.full_key(key)

    # -- basic operations -----------------------------------------------------------------
    async def get(self, key: str) -> Any:
        """Get value from cache (``None`` when absent)."""
        return await self._native.get(_bridge(), key)

    async def set(self, key: str, value: Any, ttl: int = None) -> bool:
        """Set value in cache with optional TTL (``None``: the manager's default TTL)."""
        return await self._native.set(_bridge(), key, dumps(value), ttl)

    async def delete(self, key: str) -> bool:
        """Delete a key from cache."""
        return await self._native.delete(_bridge(), key)

    async def exists(self, key: str) -> bool:
        """Check if key exists."""
        return await self._native.exists(_bridge(), key)

    async def expire(self, key: str, ttl: int) -> bool:
        """Set TTL for a key (``None``: no expiry)."""
        return await self._native.expire(_bridge(), key, "never" if ttl is None else ttl)

    async def ttl(self, key: str) -> int:
        """Get remaining TTL for a key: seconds, ``-1`` without expiry, ``-2`` if absent."""
        return await self._native.ttl(_bridge(), key)

    # -- pattern operations ---------------------------------------------------------------
    async def delete_pattern(self, pattern: str) -> int:
        """Delete all keys matching pattern (a Redis glob, within this manager's prefix)."""
        return await self._native.delete_pattern(_bridge(), pattern)

    async def keys(self, pattern: str) -> List[str]:
        """Get all keys matching pattern (without the prefix)."""
        return await self._native.keys(_bridge(), pattern)

    # -- utility operations ---------------------------------------------------------------
    async def clear(self) -> bool:
        """Clear all cache (every key under this manager's prefix)."""
        return await self._native.clear(_bridge())

    async def info(self) -> dict:
        """Get Redis server info (every ``INFO`` field; ``db0`` etc. as dicts)."""
        return await self._native.info(_bridge())

    async def ping(self) -> bool:
        """Check Redis connection."""
        return await self._native.ping(_bridge())

    # -- batch operations -----------------------------------------------------------------
    async def get_many(self, keys: Iterable[str]) -> List[Any]:
        """The values of ``keys`` in order (``None`` for missing ones), in one round trip."""
        return await self._native.get_many(_bridge(), list(keys))

    async def set_many(self, items: Dict[str, Any], ttl: int = None) -> bool:
        """Set every ``key: value`` with the same TTL, in one round trip."""
        pairs = [(k, dumps(v)) for k, v in dict(items).items()]
        return await self._native.set_many(_bridge(), pairs, ttl)

    async def delete_many(self, keys: Iterable[str]) -> int:
        """Delete ``keys``; returns how many existed."""
        return await self._native.delete_many(_bridge(), list(keys))


def default_manager() -> CacheManager:
    """The manager decorators use when given none: the installed one, else the first
    ``CacheManager`` built in this process, else one built from the configuration."""
    global _default
    if _default is None:
        CacheManager()
    return _default


def install(manager: CacheManager) -> None:
    """Makes ``manager`` the one decorators use when given none."""
    global _default
    if not isinstance(manager, CacheManager):
        raise TypeError("install() takes a CacheManager")
    _default = manager
