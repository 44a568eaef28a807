"""Python hit throughput: cachette vs cashews vs aiocache vs plain redis.asyncio.

Every contender reads the same JSON value (a small user record) from the same redis-server,
through a decorated async function for the caches (a hit on every call after the warm-up)
and a plain ``GET`` + ``json.loads`` for redis.asyncio. Each (contender, concurrency, key
spread) runs for ``--seconds`` (bounded: at most ``--max-ops`` calls), after a warm-up.

Two key spreads: ``hot`` (every call reads one key: cashews then shares one in-flight read
among concurrent identical calls, so most calls never reach Redis) and ``spread`` (1024
keys, read round-robin: every call is a real cache read). ``cachette+near`` is cachette
with its near cache (hot keys kept in process, invalidated by Redis client tracking).

    python bench.py --redis-url redis://127.0.0.1:PORT/0 [--seconds 3] [--json out.json]
"""
import argparse
import asyncio
import json
import os
import sys
import time

VALUE = {"id": 42, "name": "Ada Lovelace", "email": "ada@example.com", "roles": ["admin", "author"], "active": True}


async def drive(call, concurrency, seconds, max_ops, nkeys):
    """Runs ``call(i)`` from ``concurrency`` coroutines for ``seconds``; returns calls/s."""
    for i in range(nkeys):  # warm-up: every key is cached
        await call(i)
    done = 0
    deadline = time.perf_counter() + seconds
    per_worker = max_ops // concurrency

    async def worker(w):
        nonlocal done
        n, i = 0, w
        while n < per_worker and time.perf_counter() < deadline:
            for _ in range(16):
                await call(i % nkeys)
                i += concurrency
            n += 16
        done += n

    start = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return done / (time.perf_counter() - start)


def contender_cachette(url, near=False):
    async def setup():
        os.environ["REDIS_URL"] = url
        import cachette

        manager = cachette.CacheManager(url, key_prefix="bench-cachette:", near_cache=near)

        @cachette.cached(ttl=600, cache=manager)
        async def get_user(user_id: int):
            return VALUE

        return get_user

    return setup


def contender_cashews(url):
    async def setup():
        from cashews import cache

        cache.setup(url, client_side=False)

        @cache(ttl="10m", prefix="bench-cashews")
        async def get_user(user_id: int):
            return VALUE

        return get_user

    return setup


def contender_aiocache(url):
    async def setup():
        from urllib.parse import urlparse

        from aiocache import RedisCache, cached
        from aiocache.serializers import JsonSerializer

        u = urlparse(url)

        @cached(ttl=600, cache=RedisCache, endpoint=u.hostname, port=u.port, namespace="bench-aiocache", serializer=JsonSerializer())
        async def get_user(user_id: int):
            return VALUE

        return get_user

    return setup


def contender_redis(url):
    async def setup():
        import redis.asyncio as redis

        client = redis.Redis.from_url(url, max_connections=64)
        for i in range(1024):
            await client.set(f"bench-redis:user:{i}", json.dumps(VALUE))
        loads = json.loads

        async def get_user(user_id):
            return loads(await client.get(f"bench-redis:user:{user_id}"))

        return get_user

    return setup


CONTENDERS = {
    "cachette": contender_cachette,
    "cachette+near": lambda url: contender_cachette(url, near=True),
    "cashews": contender_cashews,
    "aiocache": contender_aiocache,
    "redis.asyncio": contender_redis,
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--redis-url", required=True)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--max-ops", type=int, default=2_000_000)
    ap.add_argument("--concurrency", default="1,64")
    ap.add_argument("--only", default=",".join(CONTENDERS))
    ap.add_argument("--spreads", default="hot,spread")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    spreads = {"hot": 1, "spread": 1024}
    results = {}
    for spread in args.spreads.split(","):
        for name in args.only.split(","):
            row = results.setdefault(spread, {}).setdefault(name, {})
            for level in levels:
                # A fresh loop (and client) per measurement.
                async def one():
                    call = await CONTENDERS[name](args.redis_url)()
                    r = await call(0)
                    assert r == VALUE, (name, r)
                    return await drive(call, level, args.seconds, args.max_ops, spreads[spread])

                try:
                    row[str(level)] = round(asyncio.run(one()))
                except Exception as e:  # a contender that cannot run is reported, not hidden
                    row[str(level)] = None
                    print(f"{name} at {level}: failed: {e!r}", file=sys.stderr)
    for spread, table in results.items():
        print(f"\n{spread} ({spreads[spread]} key{'s' if spreads[spread] > 1 else ''}), calls/s")
        print("contender".ljust(16) + "".join(f"{f'{c} coroutines':>16}" for c in levels))
        for name, row in table.items():
            print(name.ljust(16) + "".join(f"{(row[str(c)] or 0):>16,}" for c in levels))
        for c in levels:
            mine = table.get("cachette", {}).get(str(c))
            for other in ("cashews", "redis.asyncio"):
                theirs = table.get(other, {}).get(str(c))
                if mine and theirs:
                    print(f"  cachette / {other} at {c}: {mine / theirs:.1f}x")
    out = {"unit": "calls/s", "seconds": args.seconds, "python": sys.version.split()[0], "results": results}
    print(json.dumps(out))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
