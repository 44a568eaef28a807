"""``@cached``, ``@cache_evict`` and ``@cached_property``."""
import asyncio
import functools
import inspect
import logging
import sys
import time
from typing import Any, Callable, Iterable, Optional

from . import _cachette as _native
from . import _manager
from ._bridge import bridge as _bridge
from ._manager import CacheManager, dumps

log = logging.getLogger("cachette")

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)

# Failures of loads that coalesced callers waited for, so that they raise the same exception
# as the caller that ran the function (cachette tells them only that the load failed).
_failures = {}
_FAILURE_AGE = 60.0


class _Unstorable(Exception):
    """A result without a JSON form: handed to its callers, never stored."""

    def __init__(self, value):
        super().__init__("result is not JSON serializable")
        self.value = value


def _record_failure(where, exc):
    if len(_failures) > 256:
        now = time.monotonic()
        for k in [k for k, (t, _) in _failures.items() if now - t > _FAILURE_AGE]:
            del _failures[k]
    _failures[where] = (time.monotonic(), exc)


def _resolve(cache, found):
    """The manager a call uses: the decorator's ``cache``, a ``CacheManager`` argument
    (dependency injection), the ``cache`` module's ``CacheManager`` if a test patched it,
    else the default manager."""
    if cache is not None:
        return cache
    if found is not None:
        return found
    mod = sys.modules.get("cache")
    if mod is not None:
        cls = getattr(mod, "CacheManager", CacheManager)
        if cls is not CacheManager:
            return cls()
    return _manager._default if _manager._default is not None else _manager.default_manager()


class _Signature:
    """What the default key needs of a function's signature, computed once."""

    def __init__(self, fn):
        self.sig = inspect.signature(fn)
        params = list(self.sig.parameters.values())
        qual = fn.__qualname__.split(".")
        self.skip_first = bool(
            params
            and params[0].name in ("self", "cls")
            and len(qual) > 1
            and qual[-2] != "<locals>"
        )
        self.names = [p.name for p in params]
        # Parameters whose value is a CacheManager (dependency injection) pick the manager
        # and never take part in the key.
        self.managers = {
            p.name
            for p in params
            if p.annotation is CacheManager
            or (isinstance(p.annotation, str) and p.annotation.split(".")[-1] == "CacheManager")
        }
        self.simple = all(p.kind in _POSITIONAL for p in params) and not self.managers
        self.n = len(params)

    def key_args(self, args, kwargs):
        """(the arguments that take part in the key, a CacheManager argument if any)."""
        if self.simple and not kwargs and len(args) == self.n:
            return (args[1:] if self.skip_first else args), None
        bound = self.sig.bind(*args, **kwargs)
        bound.apply_defaults()
        values, found = [], None
        for i, name in enumerate(self.names):
            if i == 0 and self.skip_first:
                continue
            value = bound.arguments.get(name)
            if isinstance(value, CacheManager):
                found = value
                continue
            if name in self.managers:
                continue
            values.append(value)
        return tuple(values), found


def cached(
    ttl: int = 3600,
    key: str = None,
    key_builder: Callable = None,
    unless: Callable = None,
    fallback_on_error: bool = True,
    *,
    cache: Optional[CacheManager] = None,
    coalesce: bool = True,
    lock: bool = False,
    lock_ttl: Optional[float] = None,
    lock_wait: Optional[float] = None,
    early_refresh: float = 0.0,
    stale_ttl: Optional[float] = None,
    soft_timeout: Optional[float] = None,
    hard_timeout: Optional[float] = None,
    jitter: int = 0,
):
    """Cache function return value.

    Args:
        ttl: Time to live in seconds (``None``: no expiry)
        key: Static cache key (overrides auto-generation)
        key_builder: Function to build cache key from args: ``key_builder(func_name, args, kwargs)``
        unless: Function to conditionally skip caching: ``unless(result)`` true = not stored
        fallback_on_error: a cache failure runs the function uncached (``False``: raises ``CacheError``)

    Beyond the spec (keyword-only, cachette's ``LoadOptions``): ``cache`` (the manager; default:
    a ``CacheManager`` argument, else the default manager), ``coalesce`` (concurrent misses
    in this process run the function once; on by default), ``lock`` (the same across
    processes, through a lease in Redis), ``lock_ttl``/``lock_wait``, ``early_refresh``
    (XFetch beta, e.g. 1.0), ``stale_ttl`` (keep a stale copy this long past the TTL, served
    when the function fails or exceeds ``soft_timeout``/``hard_timeout``), ``jitter`` (percent).

    The default key is ``{prefix}{module}:{qualname}:{args hash}``, the same as a Rust
    ``#[cached]`` function's with the same module path, name and JSON-equal arguments.

    Usage:
        @cached(ttl=300)
        async def get_user(user_id: int) -> User:
            return await db.get_user(user_id)
    """
    options = _native.Options(
        ttl="never" if ttl is None else ttl,
        fallback_on_error=fallback_on_error,
        coalesce=coalesce,
        lock=lock,
        lock_ttl=lock_ttl,
        lock_wait=lock_wait,
        early_refresh=early_refresh,
        stale_ttl=stale_ttl,
        soft_timeout=soft_timeout,
        hard_timeout=hard_timeout,
        jitter=jitter,
    )

    def decorate(fn):
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(f"@cached decorates async functions; {fn.__qualname__} is not one")
        stats = _native.FnStats()
        sig = _Signature(fn)
        module, qualname, name = fn.__module__, fn.__qualname__, fn.__name__
        load, default_key, bridge = _native.load, _native.default_key, _bridge

        @functools.wraps(fn)
        async def wrapper(*args, **kwargs):
            found = None
            if key is not None:
                k = key
                if sig.managers:
                    found = sig.key_args(args, kwargs)[1]
            elif key_builder is not None:
                k = key_builder(name, args, kwargs)
                if sig.managers:
                    found = sig.key_args(args, kwargs)[1]
            else:
                try:
                    values, found = sig.key_args(args, kwargs)
                    k = default_key(module, qualname, values)
                except TypeError as e:
                    log.warning("cachette: %s.%s runs uncached: %s", module, qualname, e)
                    return await fn(*args, **kwargs)
            manager = cache if cache is not None else _resolve(None, found)
            if not isinstance(manager, CacheManager):
                return await _duck(manager, k, ttl, unless, fn, args, kwargs)
            native = manager._native

            async def run():
                try:
                    result = await fn(*args, **kwargs)
                except BaseException as e:
                    _record_failure((id(native), k), e)
                    raise
                store = not (unless is not None and unless(result))
                try:
                    text = dumps(result)
                except (TypeError, ValueError) as e:
                    log.warning("cachette: %s.%s returned a value that is not cached: %s", module, qualname, e)
                    exc = _Unstorable(result)
                    _record_failure((id(native), k), exc)
                    raise exc
                return (result, text, store)

            fut, abort = load(native, bridge(), k, options, stats, run)
            try:
                return await fut
            except asyncio.CancelledError:
                if abort is not None:
                    abort.abort()  # drops cachette's load: lease released, loader task cancelled
                raise
            except _Unstorable as e:
                return e.value
            except _native.CacheError as e:
                if getattr(e, "kind", None) == "loader":
                    entry = _failures.get((id(native), k))
                    if entry is not None and time.monotonic() - entry[0] < _FAILURE_AGE:
                        if isinstance(entry[1], _Unstorable):
                            return entry[1].value
                        raise entry[1] from None
                raise

        wrapper.cache_stats = stats.snapshot
        wrapper.cache_stats_reset = stats.reset

        def cache_key(*args, **kwargs):
            """The key (without the prefix) a call with these arguments uses."""
            if key is not None:
                return key
            if key_builder is not None:
                return key_builder(name, args, kwargs)
            return _native.default_key(module, qualname, sig.key_args(args, kwargs)[0])

        wrapper.cache_key = cache_key
        return wrapper

    return decorate


async def _duck(manager, k, ttl, unless, fn, args, kwargs):
    """A manager that is not cachette's (a test double): plain get, call, set."""
    value = manager.get(k)
    if inspect.isawaitable(value):
        value = await value
    if value is not None:
        return value
    result = await fn(*args, **kwargs)
    if not (unless is not None and unless(result)):
        done = manager.set(k, result, ttl)
        if inspect.isawaitable(done):
            await done
    return result


def cache_evict(
    key: str = None,
    keys: Iterable[str] = None,
    pattern: str = None,
    before: bool = False,
    *,
    cache: Optional[CacheManager] = None,
):
    """Evict cache entries when function is called.

    Args:
        key: Specific key to delete
        keys: Several keys to delete
        pattern: Pattern to match keys for deletion (a Redis glob)
        before: Evict before function call (default: after, and only if it returned)

    Keys and patterns may name arguments: ``key="user:{user_id}"``. A cache failure is
    logged and never fails the call.

    Usage:
        @cache_evict(pattern="user:*")
        async def update_user(user_id: int, data: dict):
            return await db.update_user(user_id, data)
    """
    key_list = ([key] if key is not None else []) + list(keys or [])

    def decorate(fn):
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(f"@cache_evict decorates async functions; {fn.__qualname__} is not one")
        sig = inspect.signature(fn)
        templated = any("{" in k for k in key_list) or (pattern is not None and "{" in pattern)

        async def evict(args, kwargs):
            manager = _resolve(cache, None)
            try:
                if templated:
                    bound = sig.bind(*args, **kwargs)
                    bound.apply_defaults()
                    names = bound.arguments
                    ks = [k.format(**names) for k in key_list]
                    pat = pattern.format(**names) if pattern is not None else None
                else:
                    ks, pat = key_list, pattern
                for k in ks:
                    r = manager.delete(k)
                    if inspect.isawaitable(r):
                        await r
                if pat is not None:
                    r = manager.delete_pattern(pat)
                    if inspect.isawaitable(r):
                        await r
            except Exception as e:  # fail open: the cache never breaks the caller
                log.warning("cachette: eviction for %s failed: %s", fn.__qualname__, e)

        @functools.wraps(fn)
        async def wrapper(*args, **kwargs):
            if before:
                await evict(args, kwargs)
            result = await fn(*args, **kwargs)
            if not before:
                await evict(args, kwargs)
            return result

        return wrapper

    return decorate


class cached_property:
    """Property that caches its result (per instance, in process) for ``ttl`` seconds.

    Concurrent first reads share one computation; an exception is not cached.

    Usage:
        class MyClass:
            @cached_property(ttl=60)
            async def expensive_computation(self):
                return await heavy_calculation()

        value = await MyClass().expensive_computation
    """

    def __init__(self, ttl: int = 60):
        if callable(ttl):  # used bare: @cached_property
            self.ttl = 60
            self._set(ttl)
        else:
            self.ttl = ttl
            self.fn = None

    def _set(self, fn):
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(f"@cached_property decorates async methods; {fn.__qualname__} is not one")
        self.fn = fn
        self.__doc__ = fn.__doc__
        self.attr = "__cachette_property_" + fn.__name__
        return self

    def __call__(self, fn):
        return self._set(fn)

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        return self._get(obj)

    def invalidate(self, obj) -> None:
        """Forgets the value of ``obj``."""
        obj.__dict__.pop(self.attr, None)

    async def _get(self, obj):
        slot = obj.__dict__.get(self.attr)
        now = time.monotonic()
        if slot is not None:
            value, expires, pending = slot
            if pending is None and (expires is None or now < expires):
                return value
            if pending is not None and not pending.done():
                return await asyncio.shield(pending)
        loop = asyncio.get_running_loop()
        pending = loop.create_future()
        obj.__dict__[self.attr] = (None, None, pending)
        try:
            value = await self.fn(obj)
        except BaseException as e:
            obj.__dict__.pop(self.attr, None)
            if not pending.done():
                if isinstance(e, asyncio.CancelledError):
                    pending.cancel()
                else:
                    pending.set_exception(e)
                    pending.exception()  # retrieved: no "never retrieved" warning
            raise
        expires = None if self.ttl is None else time.monotonic() + self.ttl
        obj.__dict__[self.attr] = (value, expires, None)
        if not pending.done():
            pending.set_result(value)
        return value
