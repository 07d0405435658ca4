"""How long `POST /v1/auth/password/forgot` takes for an address with an account and one without.

The promise is the same answer in (closely) the same time; tests/test_password_reset.py checks that
both run the same SQL statements. This measures it: a live gunicorn (production settings, one
worker) on a fresh PostgreSQL database (TEST_DATABASE_URL's server), mailing to an SMTP sink on
loopback, the two kinds of address interleaved, each request on a fresh connection, the per-address
cap never reached (a new address every time). Prints the medians and spreads, in milliseconds.

    TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test .venv/bin/python bench/forgot_timing.py [--rounds 200]
"""

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.liveserver import PASSWORD, LiveServer  # noqa: E402
from tests.smtp_sink import SmtpSink  # noqa: E402


def measure(server, rounds):
    known = []
    for _ in range(rounds):
        address = f"{uuid.uuid4().hex[:12]}@example.com"
        assert server.request("POST", "/v1/auth/register", {"email": address, "password": PASSWORD}).status == 201
        known.append(address)
    times = {"known": [], "unknown": []}
    for address in known:  # interleaved, so any drift of the machine hits both alike
        for kind, email in (("known", address), ("unknown", f"nobody-{uuid.uuid4().hex[:12]}@example.com")):
            started = time.perf_counter()
            answer = server.request("POST", "/v1/auth/password/forgot", {"email": email})
            times[kind].append((time.perf_counter() - started) * 1000)
            assert answer.status == 202, answer
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    rounds = parser.parse_args().rounds
    sink = SmtpSink().start()
    env = {"SMTP_URL": sink.url, "RATELIMIT_ENABLED": "false", "FAIR_SLOTS": "1"}
    server = LiveServer(env, workers=1, threads=4).start()
    try:
        measure(server, 20)  # warm up
        times = measure(server, rounds)
    finally:
        server.stop()
        sink.stop()
    for kind, values in times.items():
        quartiles = statistics.quantiles(values, n=4)
        print(
            f"{kind:8} median {statistics.median(values):.2f} ms  "
            f"(quartiles {quartiles[0]:.2f} - {quartiles[2]:.2f}, n={len(values)})"
        )


if __name__ == "__main__":
    main()
