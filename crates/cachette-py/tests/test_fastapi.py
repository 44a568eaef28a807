"""The spec's dependency-injection example in a real FastAPI app, driven over HTTP (httpx
through Starlette's TestClient): FastAPI resolves ``cache: CacheManager = Depends(...)``,
the decorator uses that manager and leaves it out of the key."""
from fastapi import FastAPI
from fastapi.testclient import TestClient

from test_spec_examples import FakeDatabase, block, run

import cache


async def _app():
    database = FakeDatabase()
    ns = await run(block("Decorator with Dependency Injection"), database=database, CacheManager=cache.CacheManager)
    app = FastAPI()
    app.get("/users/{user_id}")(ns["get_user"])  # the decorated function is the endpoint
    return app, database, ns


def test_dependency_injection_over_http(redis_server):
    import asyncio

    app, database, ns = asyncio.run(_app())
    with TestClient(app) as client:
        first = client.get("/users/5")
        second = client.get("/users/5")
        other = client.get("/users/6")
        bad = client.get("/users/not-a-number")
    assert first.status_code == 200 and first.json()["id"] == 5
    assert second.json() == first.json()
    assert other.json()["id"] == 6
    assert bad.status_code == 422  # FastAPI still validates the decorated signature
    assert database.count("fetch_user") == 2  # /users/5 twice: one query
    keys = redis_server.cli("KEYS", "*").split()
    assert "cache:" + ns["get_user"].cache_key(5) in keys  # the injected manager is not in the key
