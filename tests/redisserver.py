"""A real Redis on loopback, for the rate-limit tests.

`redis_url()` is the Redis the tests may use and empty: REDIS_TEST_URL when it is set (CI sets
it), otherwise a redis-server of the tests' own, started once on a free port and stopped when the
run ends. Without either, it raises SkipTest and prints why, so a machine with no Redis skips
those tests instead of failing them. `RedisServer` is one such server, for tests that stop it.
"""

import atexit
import os
import shutil
import subprocess
import sys
import time
import unittest

import redis

from tests.helpers import free_port

REDIS_SERVER = shutil.which("redis-server")
_own = {}


class RedisServer:
    def __init__(self):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None

    def start(self):
        command = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url)
        for _ in range(100):
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def redis_url():
    if os.environ.get("REDIS_TEST_URL"):
        return os.environ["REDIS_TEST_URL"]
    if not REDIS_SERVER:
        reason = "no Redis for the rate-limit tests: set REDIS_TEST_URL or put redis-server on PATH"
        print(f"\nskipped: {reason}", file=sys.stderr)
        raise unittest.SkipTest(reason)
    if "server" not in _own:
        server = RedisServer()
        server.start()
        atexit.register(server.stop)
        _own["server"] = server
    return _own["server"].url
