"""Runs every ```sh block of README.md and docs/*.md, in order, as one bash script, twice, against `make run`.

The order: README.md, then docs/curl.md (its blocks build on each other, and later pages may use
what it set up: API, call, field, RUN, the tokens), then every other page of docs/ by name.
The caller provides the settings (a fresh DATABASE_URL, production mode: see .ci/readme). This
script starts an SMTP sink (tests/smtp_sink.py; the examples read mailed links from its MAILBOX),
picks a free PORT, starts `make run` with both, waits for /v1/health, runs the blocks with
`set -euo pipefail` twice against the same database, and stops the server. The examples check
their own statuses (the curl guide's `call STATUS ...`, `curl -f`), so a status the docs do not
promise stops the run.
Usage: python3 tests/live/run_readme.py [FILE.md ...]   (default: the order above)
Prints "readme: N blocks of M pages passed twice" last.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.helpers import free_port  # noqa: E402

BLOCK = re.compile(r"^```sh\n(.*?)^```$", re.S | re.M)


def wait_until_up(port, server, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and server.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/health", timeout=2):
                return True
        except OSError:
            time.sleep(0.3)
    return False


def start_smtp_sink(mailbox):
    """tests/smtp_sink.py on a free port, writing each mail it receives into `mailbox`."""
    port = free_port()
    command = [sys.executable, "-m", "tests.smtp_sink", "--port", str(port), "--mailbox", mailbox]
    sink = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL)
    sink.port = port
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and sink.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return sink
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the SMTP sink did not come up")


def pages():
    """README.md, the curl guide (the other pages' blocks may use what it sets up), then the rest of docs/."""
    first = [ROOT / "README.md", ROOT / "docs" / "curl.md"]
    return first + sorted(path for path in (ROOT / "docs").glob("*.md") if path not in first)


def main(paths):
    blocks = [
        (path.relative_to(ROOT), n, block)
        for path in paths
        for n, block in enumerate(BLOCK.findall(path.read_text()), 1)
    ]
    # Each block reports where it is from and how long it took, on stderr.
    elapsed = "$(( ($(date +%s%N) - __started) / 1000000 ))"
    timed = [
        f'__started=$(date +%s%N)\n{block}\necho "{path} block {n}: {elapsed} ms" >&2' for path, n, block in blocks
    ]
    script = "set -euo pipefail\n" + "\n".join(timed)
    port = free_port()
    mailbox = tempfile.mkdtemp(prefix="readme-mailbox-")
    sink = start_smtp_sink(mailbox)
    # The server mails to the sink, and the examples read the links from its MAILBOX.
    env = dict(os.environ, PORT=str(port), SMTP_URL=f"smtp://127.0.0.1:{sink.port}", MAILBOX=mailbox)
    log = tempfile.NamedTemporaryFile(prefix="readme-server-", suffix=".log", delete=False)
    server = subprocess.Popen(
        ["make", "run"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        if not wait_until_up(port, server):
            print(Path(log.name).read_text()[-3000:])
            print("FAIL: make run did not come up")
            return 1
        for run in (1, 2):
            print(f"--- docs run {run}: {len(blocks)} sh blocks ---", flush=True)
            result = subprocess.run(["bash", "-c", script], cwd=ROOT, env=env)
            if result.returncode != 0:
                print(f"FAIL: docs run {run} stopped (exit {result.returncode})")
                return 1
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        sink.terminate()
        sink.wait(timeout=30)
    if "Traceback" in Path(log.name).read_text():
        print(Path(log.name).read_text()[-5000:])
        print("FAIL: the server logged a traceback")
        return 1
    print(f"readme: {len(blocks)} blocks of {len(paths)} pages passed twice")
    return 0


if __name__ == "__main__":
    sys.exit(main([Path(arg).resolve() for arg in sys.argv[1:]] or pages()))
