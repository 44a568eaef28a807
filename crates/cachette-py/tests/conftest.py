"""A real redis-server per test session, on a free loopback port, killed at the end.

``REDIS_URL`` is set before anything builds a manager, so ``CacheManager()`` and the
decorators' default manager (the spec's examples take no URL) use this server."""
import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    def __init__(self):
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is needed by these tests (apt-get install redis-server)")
        self.dir = tempfile.mkdtemp(prefix="cachette-py-redis-")
        last = None
        for _attempt in range(5):
            self.port = _free_port()
            self.log = os.path.join(self.dir, f"redis-{self.port}.log")
            self.proc = subprocess.Popen(
                [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", self.dir, "--logfile", self.log],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                        s.sendall(b"PING\r\n")
                        if s.recv(16).startswith(b"+PONG"):
                            self.url = f"redis://127.0.0.1:{self.port}/0"
                            return
                except OSError as e:
                    last = e
                time.sleep(0.05)
            self.stop()
        raise RuntimeError(f"could not start redis-server: {last}")

    def cli(self, *args):
        """redis-cli against this server (what an operator would see)."""
        out = subprocess.run(["redis-cli", "-p", str(self.port), *args], capture_output=True, text=True, timeout=10)
        return out.stdout.strip()

    def flush(self):
        self.cli("FLUSHALL")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture(scope="session")
def redis_server():
    server = RedisServer()
    os.environ["REDIS_URL"] = server.url
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.dir, ignore_errors=True)


@pytest.fixture(autouse=True)
def clean_redis(redis_server):
    redis_server.flush()
    yield redis_server
