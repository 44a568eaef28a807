"""Python writes and Rust reads, and the reverse: the Rust example
crates/cachette/examples/python_interop.rs (its `#[cached] get_user` in module
`python_interop::services::user`) against the same redis-server as this Python process.

The example's binary is ``$CACHETTE_INTEROP_BIN`` (scripts/test-python builds it), else it
is built here with cargo."""
import json
import os
import subprocess

import pytest

from cachette import CacheManager, cached

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


@pytest.fixture(scope="module")
def interop_bin():
    path = os.environ.get("CACHETTE_INTEROP_BIN")
    if not path:
        subprocess.run(["cargo", "build", "-q", "-p", "cachette", "--all-features", "--example", "python_interop"], cwd=ROOT, check=True, timeout=900)
        target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
        path = os.path.join(target, "debug", "examples", "python_interop")
    assert os.path.exists(path), path
    return path


def rust_get(bin_path, url, user_id):
    env = dict(os.environ, REDIS_URL=url)
    out = subprocess.run([bin_path, "get", str(user_id)], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    key_line, value_line = out.stdout.strip().splitlines()
    return key_line.split(" ", 1)[1], json.loads(value_line)


def python_get_user():
    """``get_user`` as if defined in python_interop/services/user.py."""
    ns = {"__name__": "python_interop.services.user", "cached": cached, "calls": []}
    exec(
        "@cached(ttl=300)\n"
        "async def get_user(user_id: int):\n"
        "    calls.append(user_id)\n"
        "    return {'id': user_id, 'name': f'user {user_id}', 'origin': 'python'}\n",
        ns,
    )
    return ns["get_user"], ns["calls"]


async def test_python_writes_rust_reads(redis_server, interop_bin):
    get_user, calls = python_get_user()
    assert (await get_user(42))["origin"] == "python" and calls == [42]
    key, value = rust_get(interop_bin, redis_server.url, 42)
    assert key == "cache:" + get_user.cache_key(42)
    assert value == {"id": 42, "name": "user 42", "origin": "python"}  # Rust did not load: a hit


async def test_rust_writes_python_reads(redis_server, interop_bin):
    key, value = rust_get(interop_bin, redis_server.url, 43)
    assert value["origin"] == "rust"
    get_user, calls = python_get_user()
    assert await get_user(43) == {"id": 43, "name": "user 43", "origin": "rust"}
    assert calls == []  # a hit on the entry Rust stored
    assert await CacheManager().ttl(key[len("cache:"):]) > 290
