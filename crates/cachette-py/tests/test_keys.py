"""Golden keys shared with the Rust crate (crates/cachette/src/key/tests.rs pins the same
strings for the same JSON-equal arguments): a Python ``@cached`` function and a Rust
``#[cached]`` one with the same module path and name share entries."""
import pytest

import cachette
from cachette import cached

GOLDEN = [
    ((42,), "services.user:get_user:a81db0d4a908caac9ed4ed07560b0030"),
    ((7, "en"), "services.user:get_user:8e150c39c281fc25df1d57afb54edfab"),
    ((1.5, True, None), "services.user:get_user:f60d2e47f46c7e5f24485d974150eed9"),
    (([1, 2, 3], {"b": [2], "a": [3]}), "services.user:get_user:97f201630a2d382c73abb759c26cf2a8"),
    ((), "services.user:get_user:99aa06d3014798d86001c324468d497f"),
]


@pytest.mark.parametrize("args,key", GOLDEN)
def test_golden_keys(args, key):
    assert cachette.default_key("services.user", "get_user", args) == key


def test_json_equal_arguments_hash_alike():
    k = lambda *a: cachette.default_key("m", "f", a)  # noqa: E731
    assert k((1, 2)) == k([1, 2])  # a tuple is a JSON array
    assert k({1: "x"}) == k({"1": "x"})  # dict keys become strings, as in json.dumps
    assert k({"a": 1, "b": 2}) == k({"b": 2, "a": 1})  # map order does not matter
    assert k(1) != k(1.0) and k(True) != k(1) and k("1") != k(1)


def test_decorated_functions_use_the_default_key():
    ns = {"__name__": "services.user", "cached": cached}  # as if defined in services/user.py
    exec("@cached(ttl=60)\nasync def get_user(user_id, lang='en'):\n    return None", ns)
    f = ns["get_user"]
    assert f.cache_key(7, "en") == f.cache_key(7) == f.cache_key(user_id=7) == GOLDEN[1][1]


def test_methods_leave_self_out():
    ns = {"__name__": "services.user", "cached": cached}
    exec("class UserService:\n    @cached(ttl=60)\n    async def count(self):\n        return 0", ns)
    svc = ns["UserService"]()
    assert ns["UserService"].count.cache_key(svc) == "services.user:UserService.count:99aa06d3014798d86001c324468d497f"


def test_unhashable_arguments_run_uncached():
    with pytest.raises(TypeError):
        cachette.default_key("m", "f", (object(),))
