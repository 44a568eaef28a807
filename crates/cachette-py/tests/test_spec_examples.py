"""Every example of the spec (tests/cache-module.md, a copy of shared/spec/cache-module.md),
executed as written: the code blocks are read from the Markdown and run with top-level
``await``; only the database calls (``database``, ``db``, ``fetch_data``, ...) are fakes."""
import ast
import inspect
import os
import re
import types
from unittest.mock import Mock, patch

import pytest

import cache
import cachette

SPEC = os.path.join(os.path.dirname(__file__), "cache-module.md")
SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "shared", "spec", "cache-module.md")


def blocks():
    """(heading, code) of every ```python block, in order."""
    text = open(SPEC).read()
    out, heading = [], None
    for m in re.finditer(r"^(#+ [^\n]*)$|^```python\n(.*?)^```", text, re.M | re.S):
        if m.group(1):
            heading = m.group(1).lstrip("#").strip()
        else:
            out.append((heading, m.group(2)))
    return out


def block(heading, index=0):
    found = [code for h, code in blocks() if h == heading]
    assert found, f"no example under {heading!r}"
    return found[index]


class User(dict):
    """What the fake database returns: a JSON object that also has attributes."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def dict(self):
        return dict(self)


class FakeDatabase:
    def __init__(self):
        self.calls = []

    async def fetch_user(self, user_id, include_extra=False):
        self.calls.append(("fetch_user", user_id, include_extra))
        return User(id=user_id, name=f"user {user_id}", is_admin=user_id == 1, extra=include_extra)

    async def update_user(self, user_id, data):
        self.calls.append(("update_user", user_id, data))
        return True

    async def delete_user(self, user_id):
        self.calls.append(("delete_user", user_id))
        return True

    async def get_all_users(self):
        self.calls.append(("get_all_users",))
        return [User(id=i, name=f"user {i}") for i in range(3)]

    async def count_users(self):
        self.calls.append(("count_users",))
        return 3

    async def get_user_ids(self):
        return [1, 2, 3]

    async def get_all_users_(self):
        return []

    def count(self, name):
        return sum(1 for c in self.calls if c[0] == name)


async def run(code, **names):
    """Runs one example as a module body with top-level await; returns its namespace.

    Some fragments use names their block does not import (``cache_evict`` in "Class Method
    Caching", ``cached`` in "Best Practices"): like the module they come from, the namespace
    starts with ``from cache import *``."""
    ns = {"__name__": "spec_examples", "__builtins__": __builtins__}
    exec("from cache import *", ns)
    ns.update(names)
    compiled = compile(code, "<spec example>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(compiled, ns)
    if inspect.iscoroutine(result):
        await result
    return ns


def test_the_spec_copy_is_current():
    if not os.path.exists(SHARED):
        pytest.skip("shared/spec not beside the repository")
    assert open(SHARED).read() == open(SPEC).read()


def test_every_python_block_is_covered():
    covered = {
        "CacheManager", "`@cached`", "`@cached_property`", "`@cache_evict`", "Basic Caching",
        "Custom Key Builder", "Conditional Caching", "Cache Eviction", "Direct Cache Operations",
        "Class Method Caching", "Cached Property", "Auto-Generated Keys", "Recommended Patterns",
        "Cache Statistics", "Batch Operations", "Cache Warming", "Decorator with Dependency Injection",
        "1. Set Appropriate TTL", "2. Cache Invalidation Strategy", "3. Handle Cache Failures",
        "4. Avoid Caching Large Objects", "Mock Cache for Testing", "Cache Statistics in Tests",
    }
    assert {h for h, _ in blocks()} == covered


# ---- the API blocks: the package has the spec's signatures and defaults ------------------

def test_signatures_are_the_specs():
    api = block("CacheManager")
    stub = {}
    exec(api.replace("class CacheManager:", "from typing import Any, List\nclass CacheManager:", 1), stub)
    for name, spec_fn in vars(stub["CacheManager"]).items():
        if not callable(spec_fn) or name.startswith("__") and name != "__init__":
            continue
        mine = getattr(cache.CacheManager, name)
        spec_sig = inspect.signature(spec_fn)
        my_params = [p for p in inspect.signature(mine).parameters.values() if p.kind != p.KEYWORD_ONLY]
        assert [(p.name, p.default) for p in my_params] == [(p.name, p.default) for p in spec_sig.parameters.values()], name
        assert inspect.iscoroutinefunction(mine) == inspect.iscoroutinefunction(spec_fn), name
    for heading, fn in (("`@cached`", cache.cached), ("`@cache_evict`", cache.cache_evict)):
        stub = {}
        exec("from typing import Callable\n" + block(heading), stub)
        spec_fn = stub[fn.__name__]
        mine = [(p.name, p.default) for p in inspect.signature(fn).parameters.values() if p.kind != p.KEYWORD_ONLY]
        spec = [(p.name, p.default) for p in inspect.signature(spec_fn).parameters.values()]
        # The spec's later sections add `fallback_on_error=True` (cached) and `keys` (cache_evict).
        extra = {"cached": [("fallback_on_error", True)], "cache_evict": [("keys", None)]}[fn.__name__]
        assert sorted(mine) == sorted(spec + extra)
    assert inspect.signature(cache.cached_property).parameters["ttl"].default == 60
    assert cache.cached is cachette.cached and cache.CacheManager is cachette.CacheManager


# ---- the usage examples -----------------------------------------------------------------

async def test_basic_caching(redis_server):
    database = FakeDatabase()
    ns = await run(block("Basic Caching"), database=database)
    assert ns["user1"] == ns["user2"] == {"id": 1, "name": "user 1", "is_admin": True, "extra": False}
    assert database.count("fetch_user") == 1  # the second call came from the cache
    key = "cache:spec_examples:get_user:" + cachette.args_hash((1,))
    assert redis_server.cli("TTL", key) in ("300", "299")


async def test_custom_key_builder(redis_server):
    database = FakeDatabase()
    ns = await run(block("Custom Key Builder"), database=database)
    f = ns["get_user_with_relations"]
    assert (await f(7, include_extra=True))["extra"] is True
    assert await f(7, include_extra=True) == await f(user_id=7, include_extra=True)
    assert database.count("fetch_user") == 1
    assert redis_server.cli("EXISTS", "cache:user:7:extra:True") == "1"
    await f(7)
    assert redis_server.cli("EXISTS", "cache:user:7:extra:False") == "1"


async def test_conditional_caching(redis_server):
    database = FakeDatabase()
    ns = await run(block("Conditional Caching"), database=database)
    get_user = ns["get_user"]
    await get_user(1)  # an admin: not cached
    await get_user(1)
    await get_user(2)
    await get_user(2)
    assert [c[1] for c in database.calls] == [1, 1, 2]


async def test_cache_eviction(redis_server):
    database = FakeDatabase()
    ns = await run(block("Cache Eviction"), database=database)
    await ns["get_user"](1)
    await ns["get_user"](2)
    assert redis_server.cli("EXISTS", "cache:user:1") == "1"
    await ns["delete_user"](1)
    assert redis_server.cli("EXISTS", "cache:user:1") == "0"
    assert redis_server.cli("EXISTS", "cache:user:2") == "1"
    assert await ns["update_user"](2, {"name": "x"}) is True
    assert redis_server.cli("KEYS", "cache:user:*") == ""
    await ns["get_user"](2)
    assert database.count("fetch_user") == 3


async def test_direct_cache_operations(redis_server):
    ns = await run(block("Direct Cache Operations"))
    assert ns["value"] == {"data": "value"}
    assert ns["exists"] is True
    assert redis_server.cli("DBSIZE") == "0"


async def test_direct_operations_are_json_for_redis_cli(redis_server):
    c = cache.CacheManager()
    await c.set("key", {"data": "value", "n": [1, 2.5, None, True]}, ttl=300)
    assert redis_server.cli("GET", "cache:key") == '{"data":"value","n":[1,2.5,null,true]}'


async def test_class_method_caching(redis_server):
    ns = await run(block("Class Method Caching"))
    service = ns["UserService"]()
    service.db = FakeDatabase()
    assert (await service.get_user(3))["id"] == 3
    await service.get_user(3)
    assert await service.get_user_count() == 3
    await service.get_user_count()
    assert service.db.count("fetch_user") == 1 and service.db.count("count_users") == 1
    keys = redis_server.cli("KEYS", "*").split()
    assert "cache:spec_examples:UserService.get_user_count:99aa06d3014798d86001c324468d497f" in keys
    assert await service.update_user(3, {}) is True


async def test_cached_property(redis_server):
    class Source:
        fetched = 0

        async def fetch(self):
            Source.fetched += 1
            return [3, 1, 2]

    ns = await run(block("Cached Property"), processed=[1, 2, 3])  # `processed` is the spec's placeholder
    p = ns["DataProcessor"](Source())
    assert await p.processed_data == [1, 2, 3]
    assert await p.processed_data == [1, 2, 3]
    assert Source.fetched == 1
    assert await ns["DataProcessor"](Source()).processed_data == [1, 2, 3]
    assert Source.fetched == 2  # per instance


async def test_key_naming_blocks_are_comments_and_patterns():
    await run(block("Auto-Generated Keys"))
    await run(block("Recommended Patterns"))


async def test_cache_statistics(redis_server, capsys):
    await run(block("Cache Statistics"))
    out = capsys.readouterr().out
    assert "Used memory: " in out and "Total keys: 0" in out and "Redis is connected" in out


async def test_batch_operations(redis_server):
    users = {i: {"id": i} for i in (1, 2, 3)}
    ns = await run(block("Batch Operations"), user1_data=users[1], user2_data=users[2], user3_data=users[3])
    assert ns["values"] == [None, None, None]  # read before the write, as written
    c = ns["cache"]
    assert await c.get_many(ns["keys"]) == [users[1], users[2], users[3]]
    assert redis_server.cli("TTL", "cache:user:2") in ("300", "299")


async def test_cache_warming(redis_server, capsys):
    database = FakeDatabase()
    ns = await run(block("Cache Warming"), database=database)
    await ns["warm_cache"]()
    assert "Cached 3 users" in capsys.readouterr().out
    assert await ns["cache"].get("user:2") == {"id": 2, "name": "user 2"}


async def test_dependency_injection_called_directly(redis_server):
    database = FakeDatabase()
    ns = await run(block("Decorator with Dependency Injection"), database=database, CacheManager=cache.CacheManager)
    assert (await ns["get_user"](5))["id"] == 5
    await ns["get_user"](5)
    assert database.count("fetch_user") == 1


async def test_best_practices(redis_server):
    ns = await run(block("1. Set Appropriate TTL"))
    assert await ns["get_live_data"]() is None
    await ns["get_reference_data"]()
    key = "cache:spec_examples:get_reference_data:99aa06d3014798d86001c324468d497f"
    assert redis_server.cli("TTL", key) == "-1"  # ttl=None: no expiry
    assert redis_server.cli("TTL", key.replace("get_reference_data", "get_live_data")) in ("60", "59")

    ns = await run(block("2. Cache Invalidation Strategy"))
    c = cache.CacheManager()
    await c.set("user:list", [1])
    await c.set("user:stats", {})
    await c.set("user:1", {})
    await ns["create_user"]({})
    assert await c.keys("user:*") == ["user:1"]
    await ns["update_user"](1, {})
    assert await c.keys("user:*") == []

    calls = []

    async def fetch_data():
        calls.append(1)
        return {"ok": True}

    ns = await run(block("3. Handle Cache Failures"), fetch_data=fetch_data)
    assert await ns["get_critical_data"]() == {"ok": True}
    assert await ns["get_critical_data"]() == {"ok": True}
    assert len(calls) == 1

    ns = await run(block("4. Avoid Caching Large Objects"), db=FakeDatabase())
    assert await ns["get_user_ids"]() == [1, 2, 3]
    assert await ns["get_all_users"]() == [{"id": i, "name": f"user {i}"} for i in range(3)]


def _mock_cache():
    cache = Mock()
    cache.get = Mock(return_value=None)
    cache.set = Mock(return_value=True)
    return cache


async def test_testing_examples_with_a_mock_manager(redis_server):
    """The spec's test doubles: a ``Mock`` patched over ``cache.CacheManager`` is the manager
    the decorators use (plain ``get``/``set`` calls, awaited only if they return awaitables)."""
    database = FakeDatabase()
    ns = await run(block("Basic Caching"), database=database)
    ns["patch"] = patch
    ns = await run(block("Mock Cache for Testing"), **ns)
    await ns["test_cached_function"](_mock_cache())
    mock = _mock_cache()
    with patch("cache.CacheManager", return_value=mock):
        ns2 = await run(block("Cache Statistics in Tests"), get_user=ns["get_user"])
        await ns2["test_cache_hit"]()
    assert mock.get.call_count == 2 and mock.set.call_count == 2
    assert database.count("fetch_user") == 1 + 3  # a Mock that stores nothing never hits
