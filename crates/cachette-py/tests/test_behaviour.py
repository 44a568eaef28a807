"""asyncio correctness: exceptions, cancellation, several loops, fork, coalescing, stale
copies, the breaker, fail-open, stats."""
import asyncio
import os
import sys

import pytest

import cachette
from cachette import CacheManager, cached


class Boom(Exception):
    pass


async def test_exception_reaches_the_caller_unchanged_and_is_not_cached(redis_server):
    calls = []

    @cached(ttl=60)
    async def flaky(x):
        calls.append(x)
        if len(calls) == 1:
            raise Boom("first")
        return x

    with pytest.raises(Boom) as info:
        await flaky(1)
    assert str(info.value) == "first" and info.value.__traceback__ is not None
    assert redis_server.cli("DBSIZE") == "0"
    assert await flaky(1) == 1 and calls == [1, 1]


async def test_coalesced_waiters_get_the_same_exception(redis_server):
    gate = asyncio.Event()
    calls = []

    @cached(ttl=60)
    async def slow(x):
        calls.append(x)
        await gate.wait()
        raise Boom("shared")

    tasks = [asyncio.ensure_future(slow(1)) for _ in range(5)]
    await asyncio.sleep(0.2)
    gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert calls == [1]
    assert all(isinstance(r, Boom) and str(r) == "shared" for r in results), results


async def test_concurrent_misses_run_the_function_once(redis_server):
    calls = []

    @cached(ttl=60)
    async def slow(x):
        calls.append(x)
        await asyncio.sleep(0.1)
        return {"x": x}

    results = await asyncio.gather(*(slow(7) for _ in range(20)))
    assert calls == [7] and all(r == {"x": 7} for r in results)
    assert slow.cache_stats()["misses"] >= 1


async def test_cancellation_leaves_nothing_behind(redis_server):
    started, finished = [], []
    cache = CacheManager()

    @cached(ttl=60, lock=True)
    async def slow(x):
        started.append(x)
        try:
            await asyncio.sleep(30)
        finally:
            finished.append(x)
        return x

    task = asyncio.ensure_future(slow(1))
    for _ in range(100):
        if started:
            break
        await asyncio.sleep(0.01)
    assert started == [1]
    assert any("#lock" in k for k in redis_server.cli("KEYS", "*").split())  # the lease is held
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(200):  # bounded: the cancellation reaches the task and the lease
        if finished and cache.stats()["loads_in_flight"] == 0 and redis_server.cli("DBSIZE") == "0":
            break
        await asyncio.sleep(0.01)
    assert finished == [1]  # the function's coroutine was cancelled, not left running
    assert cache.stats()["loads_in_flight"] == 0
    assert redis_server.cli("DBSIZE") == "0"  # no lease, no value


def test_several_event_loops_in_sequence(redis_server):
    calls = []

    @cached(ttl=60)
    async def f(x):
        calls.append(x)
        return x * 2

    for _ in range(3):
        assert asyncio.run(f(21)) == 42
        assert asyncio.run(CacheManager().get(f.cache_key(21))) == 42
    assert calls == [21]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork()")
def test_after_fork(redis_server):
    cache = CacheManager()
    assert asyncio.run(cache.set("parent", 1)) is True  # the parent has a runtime and a connection
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a new runtime, a new connection, the same cache
        code = 1
        try:
            async def child():
                c = CacheManager()
                assert await c.get("parent") == 1
                assert await c.set("child", {"pid": os.getpid()}) is True

                @cached(ttl=60)
                async def g():
                    return "from child"

                assert await g() == "from child"

            asyncio.run(asyncio.wait_for(child(), 10))
            code = 0
        except BaseException as e:  # reported to the parent through the pipe
            os.write(w, repr(e).encode())
        finally:
            os._exit(code)
    os.close(w)
    _, status = os.waitpid(pid, 0)
    message = os.read(r, 4096).decode()
    os.close(r)
    assert os.WEXITSTATUS(status) == 0, message
    assert asyncio.run(cache.get("child"))["pid"] == pid
    assert asyncio.run(cache.get("parent")) == 1


async def test_unless_and_unserializable_results(redis_server):
    @cached(ttl=60, unless=lambda r: r.get("skip"))
    async def f(skip):
        return {"skip": skip}

    await f(True)
    await f(False)
    assert redis_server.cli("DBSIZE") == "1"

    class Opaque:
        pass

    @cached(ttl=60)
    async def g():
        return Opaque()

    assert isinstance(await g(), Opaque)
    assert redis_server.cli("DBSIZE") == "1"


async def test_fail_open_when_redis_is_down():
    down = CacheManager("redis://127.0.0.1:1/0", key_prefix="down:")
    calls = []

    @cached(ttl=60, cache=down)
    async def f(x):
        calls.append(x)
        return x

    assert await f(1) == 1 and await f(1) == 1 and calls == [1, 1]
    assert await down.ping() is False

    @cached(ttl=60, cache=down, fallback_on_error=False)
    async def strict(x):
        return x

    with pytest.raises(cachette.CacheError) as info:
        await strict(1)
    assert info.value.kind in ("connection", "timeout", "circuit_open")


async def test_breaker_opens_and_is_in_stats():
    down = CacheManager("redis://127.0.0.1:1/0", key_prefix="breaker:", circuit_breaker=(2, 60.0))
    for _ in range(4):
        with pytest.raises(cachette.CacheError):
            await down.get("k")
    stats = down.stats()
    assert stats["circuit"] == "open" and stats["short_circuits"] >= 1


async def test_stale_copy_served_when_the_function_fails(redis_server):
    calls = []

    @cached(ttl=1, stale_ttl=60)
    async def f():
        calls.append(1)
        if len(calls) > 1:
            raise Boom("down")
        return "fresh"

    assert await f() == "fresh"
    await asyncio.sleep(1.2)
    assert await f() == "fresh"  # expired: the function failed, the stale copy is served
    assert len(calls) == 2
    assert CacheManager().stats()["stale_served"] >= 1


async def test_values_round_trip_as_python_json(redis_server):
    c = CacheManager()
    value = {"a": [1, 2.5, "é", None, True], "t": (1, 2), 3: "int key"}
    await c.set("v", value)
    assert await c.get("v") == {"a": [1, 2.5, "é", None, True], "t": [1, 2], "3": "int key"}
    with pytest.raises(ValueError):
        await c.set("nan", float("nan"))
    with pytest.raises(TypeError):
        await c.set("obj", object())
    assert await c.ttl("v") in (3600, 3599) and await c.ttl("missing") == -2
    assert await c.expire("v", None) is True and await c.ttl("v") == -1
    assert await c.delete("v") is True and await c.delete("v") is False


async def test_an_injected_manager_is_used_and_left_out_of_the_key(redis_server):
    assert cachette.default_manager().key_prefix == "cache:"
    other = CacheManager(key_prefix="injected:")

    @cached(ttl=60)
    async def f(x, cache: CacheManager = None):
        return x

    assert await f(1, cache=other) == 1
    assert redis_server.cli("KEYS", "*").split() == ["injected:" + f.cache_key(1)]
    assert f.cache_key(1) == f.cache_key(1, cache=other)


async def test_the_lease_runs_the_function_once_across_managers(redis_server):
    """Two managers (two processes' worth: separate in-process coalescing) on one Redis: with
    ``lock=True`` the function runs once; without, once per manager."""
    a = CacheManager(key_prefix="lease:")
    b = CacheManager(key_prefix="lease:", circuit_breaker=(5, 1.0))  # a second native manager
    assert a._native is not b._native
    for lock, expected in ((True, 1), (False, 2)):
        calls = []

        async def body(x):
            calls.append(x)
            await asyncio.sleep(0.3)
            return x

        fa = cached(ttl=60, cache=a, lock=lock)(body)
        fb = cached(ttl=60, cache=b, lock=lock)(body)
        await a.clear()
        assert await asyncio.gather(fa(1), fb(1)) == [1, 1]
        assert len(calls) == expected, (lock, calls)


async def test_early_refresh_reloads_before_expiry(redis_server):
    calls = []

    @cached(ttl=2, early_refresh=1000.0)
    async def f():
        calls.append(1)
        await asyncio.sleep(0.05)
        return len(calls)

    assert await f() == 1
    for _ in range(40):  # bounded: a huge beta refreshes on nearly every read
        await asyncio.sleep(0.05)
        await f()
        if len(calls) > 1:
            break
    assert len(calls) > 1
    assert f.cache_stats()["early_refreshes"] >= 1


async def test_coalescing_can_be_turned_off(redis_server):
    calls = []

    @cached(ttl=60, coalesce=False)
    async def slow(x):
        calls.append(x)
        await asyncio.sleep(0.1)
        return x

    await asyncio.gather(*(slow(1) for _ in range(3)))
    assert calls == [1, 1, 1]
