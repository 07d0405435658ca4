"""Two instances behind HAProxy, sharing PostgreSQL, Redis and S3: what one instance does, the other knows.

Run by `.ci/scale` (which installs HAProxy). On loopback, on free ports:
  - a fresh PostgreSQL database, Redis (a key prefix of its own), the SeaweedFS S3 server;
  - instances A and B: gunicorn, production mode, the same settings;
  - HAProxy in front, health-checking /v1/health.
Checks, against A, B and the balancer; then A is SIGKILLed under load and restarted.
Prints "scale-checks: N passed, M failed" last; everything it started is stopped on exit.

    python tests/live/scale.py            # the checks
    python tests/live/scale.py --bench 5  # also wrk: one instance vs two behind HAProxy, 3 rounds of 5 s
"""

import argparse
import collections
import csv
import hashlib
import http.client
import io
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

import psycopg2  # noqa: E402
import redis  # noqa: E402

from tests.helpers import free_port, image_bytes  # noqa: E402
from tests.s3server import SeaweedS3  # noqa: E402

BIN = os.path.dirname(sys.executable)
PG_HOST = "postgresql://postgres@127.0.0.1:5432"
REDIS_URL = "redis://127.0.0.1:6379/15"
ADMIN = ("admin@example.com", "admin password for scale")
LOGIN_LIMIT = 10  # RATELIMIT_LOGIN's default: 10 failures per minute
LOAD_SECONDS, KILL_AT, RESTART_AT, AFTER_RETURN, LOAD_THREADS = 20, 5, 8, 3, 6


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:  # not listening yet
            pass
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}")


# -- HTTP ----------------------------------------------------------------------------------------


class Answer:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    @property
    def json(self):
        return json.loads(self.body)


def call(base, method, path, body=None, token=None, headers=None, content_type="application/json"):
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    request = urllib.request.Request(base + path, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        request.add_header("Content-Type", content_type)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return Answer(answer.status, answer.headers, answer.read())
    except urllib.error.HTTPError as error:
        return Answer(error.code, error.headers, error.read())


def multipart(fields, files):
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    for name, value in fields.items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, filename, content, kind in files:
        out.write(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            f"Content-Type: {kind}\r\n\r\n".encode()
        )
        out.write(content + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


# -- the pieces ----------------------------------------------------------------------------------


class Stack:
    """Everything started here is registered for `stop`, in reverse order."""

    def __init__(self):
        self.work = tempfile.mkdtemp(prefix="scale-")
        self.database = f"api_scale_{os.getpid()}"
        self.key_prefix = f"scale-{os.getpid()}-{secrets.token_hex(4)}"
        self.processes = {}
        self.ports = {}
        self.s3 = None

    # PostgreSQL, Redis, S3

    @staticmethod
    def admin_sql(statement, attempts=30):
        """Run one statement as the superuser; a server with every connection taken gets a few seconds."""
        for attempt in range(attempts):
            try:
                connection = psycopg2.connect(f"{PG_HOST}/postgres")
                break
            except psycopg2.OperationalError as error:
                if "too many clients" not in str(error) or attempt == attempts - 1:
                    raise
                time.sleep(1)
        connection.autocommit = True
        try:
            connection.cursor().execute(statement)
        finally:
            connection.close()

    def start_services(self):
        self.admin_sql(f"CREATE DATABASE {self.database}")
        self.s3 = SeaweedS3().start()
        self.env = dict(
            os.environ,
            APP_ENV="production",
            SECRET_KEY=secrets.token_urlsafe(48),
            DATABASE_URL=f"{PG_HOST}/{self.database}",
            RATELIMIT_STORAGE_URI=REDIS_URL,
            RATELIMIT_KEY_PREFIX=self.key_prefix,
            IMAGE_STORAGE="s3",
            S3_ENDPOINT_URL=self.s3.endpoint,
            S3_BUCKET=f"scale-{secrets.token_hex(6)}",
            AWS_ACCESS_KEY_ID="scale-access-key",
            AWS_SECRET_ACCESS_KEY="scale-secret-key",
            TRUSTED_PROXIES="1",  # HAProxy adds X-Forwarded-For
            # 2 instances x 2 workers x (3 + 2): at most 20 connections, enough for 6 load threads
            DB_POOL_SIZE="3",
            DB_MAX_OVERFLOW="2",
            BCRYPT_ROUNDS="4",  # production cost 12 would only slow CI down
            LOG_LEVEL="WARNING",
        )
        self.manage("db", "upgrade")
        self.manage("create-user", ADMIN[0], "--password", ADMIN[1], "--role", "admin")

    def manage(self, *args, attempts=15):
        """`manage.py` with the instances' settings; a server with every connection taken gets a few seconds."""
        for _ in range(attempts):
            done = subprocess.run(
                [os.path.join(BIN, "python"), "manage.py", *args],
                cwd=ROOT,
                env=self.env,
                capture_output=True,
                text=True,
            )
            if done.returncode == 0 or "too many clients" not in done.stderr:
                break
            time.sleep(2)
        if done.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stderr[-2000:]}")

    # processes

    def spawn(self, name, command, env=None):
        log = open(os.path.join(self.work, f"{name}.log"), "ab")
        self.processes[name] = subprocess.Popen(
            command, cwd=ROOT, env=env or self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def signal(self, name, signum):
        process = self.processes.pop(name, None)
        if process and process.poll() is None:
            os.killpg(process.pid, signum)  # the whole group: gunicorn's workers die with their master
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def start_instance(self, name, port):
        self.ports[name] = port
        self.spawn(
            name,
            [
                os.path.join(BIN, "gunicorn"),
                "--config=gunicorn.conf.py",
                "--access-logfile=/dev/null",
                f"--bind=127.0.0.1:{port}",
                "app:create_app()",
            ],
        )
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: call(base, "GET", "/v1/health").status == 200, 30, f"instance {name}")
        return base

    def start_balancer(self, port, servers):
        self.stats_socket = os.path.join(self.work, "haproxy.sock")
        # A refused connection marks a server down at once, before the health check notices.
        watch = "observe layer4 error-limit 1 on-error mark-down"
        lines = "\n".join(f"    server {name} 127.0.0.1:{server_port} {watch}" for name, server_port in servers)
        config = HAPROXY_CONFIG.format(port=port, stats=self.stats_socket, servers=lines)
        path = os.path.join(self.work, "haproxy.cfg")
        with open(path, "w") as out:
            out.write(config)
        self.spawn("haproxy", ["haproxy", "-db", "-f", path])
        wait_for(lambda: all(row["status"] == "UP" for row in self.servers().values()), 30, "HAProxy: both UP")
        return f"http://127.0.0.1:{port}"

    def haproxy(self, command):
        """A command on HAProxy's admin socket, and its answer."""
        with socket.socket(socket.AF_UNIX) as conn:
            conn.connect(self.stats_socket)
            conn.sendall(command.encode() + b"\n")
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
        return data.decode()

    def servers(self):
        """HAProxy's view of each server: status, total requests sent (stot), retries (wretr)..."""
        rows = csv.DictReader(io.StringIO(self.haproxy("show stat").lstrip("# ")))
        return {row["svname"]: row for row in rows if row["pxname"] == "app" and row["svname"] in ("a", "b")}

    def requests_to(self, name):
        return int(self.servers()[name]["stot"])

    def stop(self):
        for name in reversed(list(self.processes)):
            self.signal(name, signal.SIGTERM)
        if self.s3:
            self.s3.stop()
        try:
            self.admin_sql(f"DROP DATABASE IF EXISTS {self.database} WITH (FORCE)")
        except psycopg2.Error as error:
            print(f"could not drop {self.database}: {error}")
        try:
            client = redis.Redis.from_url(REDIS_URL)
            keys = list(client.scan_iter(f"*{self.key_prefix}*"))
            if keys:
                client.delete(*keys)
        except redis.RedisError as error:
            print(f"could not clear the rate-limit keys: {error}")
        shutil.rmtree(self.work, ignore_errors=True)


# Retries and redispatch send a request that found A dead to B; fast checks take A out within a second.
# L7 retries (a request sent, no answer) only for methods that are safe to send twice.
HAPROXY_CONFIG = """
global
    maxconn 1000
    stats socket {stats} mode 600 level admin

defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    timeout check 1s
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response junk-response

frontend api
    bind 127.0.0.1:{port}
    option forwardfor
    default_backend app

backend app
    balance roundrobin
    option httpchk GET /v1/health
    http-check expect status 200
    http-request disable-l7-retry unless METH_GET || METH_HEAD || METH_OPTIONS
    default-server check inter 1s fastinter 250ms downinter 500ms fall 2 rise 2
{servers}
"""


# -- checks --------------------------------------------------------------------------------------


class Checks:
    def __init__(self, stack, a, b, lb):
        self.stack, self.a, self.b, self.lb = stack, a, b, lb
        self.passed, self.failed = 0, 0

    def run(self, name, check):
        try:
            note = check()
        except AssertionError as error:
            self.failed += 1
            print(f"FAILED: {name}: {error}")
        except Exception as error:  # noqa: BLE001 - a broken check is a failure, reported, never a crash
            self.failed += 1
            print(f"FAILED: {name}: {type(error).__name__}: {error}")
        else:
            if note == "skipped":
                print(f"skipped: {name}")
                return
            self.passed += 1
            print(f"ok: {name}" + (f" ({note})" if note else ""))

    @staticmethod
    def expect(answer, status, what):
        assert answer.status == status, f"{what}: expected {status}, got {answer.status} {answer.body[:200]!r}"
        return answer

    def register(self, base):
        email = f"u{uuid.uuid4().hex[:10]}@example.com"
        answer = call(base, "POST", "/v1/auth/register", {"email": email, "password": "a good password"})
        return email, self.expect(answer, 201, "register").json

    def login(self, base, email=ADMIN[0], password=ADMIN[1]):
        return self.expect(call(base, "POST", "/v1/auth/login", {"email": email, "password": password}), 200, "login")

    # the checks

    def token_from_a_works_on_b(self):
        _, tokens = self.register(self.a)
        for base in (self.b, self.lb):
            self.expect(call(base, "GET", "/v1/auth/me", token=tokens["auth_token"]), 200, "me")

    def logout_on_a_is_401_on_b(self):
        _, tokens = self.register(self.a)
        body = {"refresh_token": tokens["refresh_token"]}
        self.expect(call(self.a, "POST", "/v1/auth/logout", body, token=tokens["auth_token"]), 200, "logout on A")
        for base in (self.b, self.lb):
            answer = self.expect(call(base, "GET", "/v1/auth/me", token=tokens["auth_token"]), 401, "me")
            assert "revoked" in answer.json["message"], answer.json
            self.expect(call(base, "POST", "/v1/auth/refresh", body), 401, "refresh after logout")

    def spent_refresh_token_is_refused_elsewhere(self):
        email, _ = self.register(self.b)
        refresh = self.login(self.b, email, "a good password").json["refresh_token"]
        self.expect(call(self.a, "POST", "/v1/auth/refresh", {"refresh_token": refresh}), 200, "refresh on A")
        for base in (self.b, self.lb):
            self.expect(call(base, "POST", "/v1/auth/refresh", {"refresh_token": refresh}), 401, "second use")

    def failed_login_limit_counts_across_instances(self):
        email, _ = self.register(self.lb)
        wrong = {"email": email, "password": "not the password"}
        for attempt in range(LOGIN_LIMIT):
            base = (self.a, self.b)[attempt % 2]
            self.expect(call(base, "POST", "/v1/auth/login", wrong), 401, f"failure {attempt + 1}")
        for base, where in ((self.a, "A"), (self.b, "B"), (self.lb, "balancer")):
            answer = self.expect(call(base, "POST", "/v1/auth/login", wrong), 429, f"11th failure on {where}")
            assert answer.headers.get("Retry-After"), "429 without Retry-After"
        return f"{LOGIN_LIMIT} failures split over A and B, then 429 on A, B and the balancer"

    def image_crosses_instances(self):
        token = self.login(self.lb).json["auth_token"]
        content = image_bytes("PNG", size=(90, 60), color=(10, 120, 200))
        body, kind = multipart({"title": "scale"}, [("images", "scale.png", content, "image/png")])
        upload = self.expect(call(self.a, "POST", "/v1/images", body, token=token, content_type=kind), 201, "upload")
        image = upload.json["images"][0]
        served = self.expect(call(self.b, "GET", image["links"]["file"], token=token), 200, "file on B")
        assert served.headers["Content-Type"] == "image/png", served.headers["Content-Type"]
        assert hashlib.sha256(served.body).hexdigest() == image["sha256"], "B serves other bytes"
        self.expect(call(self.b, "GET", image["links"]["thumbnail"], token=token), 200, "thumbnail on B")
        self.expect(call(self.b, "DELETE", f"/v1/images/{image['id']}", token=token), 200, "delete on B")
        for path in (f"/v1/images/{image['id']}", image["links"]["file"], image["links"]["thumbnail"]):
            self.expect(call(self.a, "GET", path, token=token), 404, f"{path} on A after delete")

    def idempotency_replay_crosses_instances(self):
        document = call(self.lb, "GET", "/v1/openapi.json").body.decode()
        if "Idempotency-Key" not in document:
            return "skipped"  # runs once the feature is on main
        _, tokens = self.register(self.lb)
        token, key = tokens["auth_token"], uuid.uuid4().hex
        body = {"name": f"replayed {key[:8]}"}
        headers = {"Idempotency-Key": key}
        first = self.expect(call(self.a, "POST", "/v1/buckets", body, token=token, headers=headers), 201, "on A")
        again = self.expect(call(self.b, "POST", "/v1/buckets", body, token=token, headers=headers), 201, "on B")
        assert again.headers.get("Idempotent-Replayed") == "true", dict(again.headers)
        assert again.json == first.json, "the replay differs"
        assert again.headers.get("Location") == first.headers.get("Location")
        listing = self.expect(call(self.lb, "GET", "/v1/buckets", token=token), 200, "list")
        assert listing.json["pagination"]["total"] == 1, listing.json["pagination"]

    def kill_under_load(self):
        """SIGKILL A under load through the balancer, restart it; count the answers."""
        token = self.login(self.lb).json["auth_token"]
        load = Load(self.lb, "/v1/buckets", token, LOAD_THREADS)
        load.start()
        try:
            a = self._kill_and_restart_a(load)
        finally:
            load.stop()
        servers = self.stack.servers()
        a["after_return"] = int(servers["a"]["stot"]) - a["when_back"]
        statuses = ", ".join(f"{status}: {count}" for status, count in sorted(load.statuses.items(), key=str))
        failures = sum(count for status, count in load.statuses.items() if not isinstance(status, int))
        print(
            f"    load: {sum(load.statuses.values())} requests in {load.seconds:.1f} s ({statuses});"
            f" 5xx or no answer: {failures}\n"
            f"    A: {a['before_kill']} requests before the kill at {KILL_AT} s, {a['while_dead']} sent to it while"
            f" dead (redispatched), {a['after_return']} after it was back at {a['back_after']:.1f} s;"
            f" B: {servers['b']['stot']}\n"
            f"    in flight on A when it died, sent again to B by HAProxy: {servers['a']['wretr']} retried,"
            f" {servers['a']['wredis']} redispatched"
        )
        for name in ("a", "b"):
            with open(os.path.join(self.stack.work, f"{name}.log"), errors="replace") as log:
                outages = collections.Counter(line.split(": ", 1)[-1].strip() for line in log if "unreachable" in line)
            if outages:
                print(f"    instance {name} logged: {dict(outages)}")
        assert failures <= LOAD_THREADS, f"{failures} failed answers: more than the requests that can be in flight"
        assert a["after_return"] > 0, "the balancer sent nothing to A after it came back"
        assert not [status for status in load.statuses if isinstance(status, int) and 200 < status < 500], statuses
        return f"answers lost: {failures}"

    def _kill_and_restart_a(self, load):
        """HAProxy's request counts for A along the way."""
        time.sleep(KILL_AT)
        counts = {"before_kill": self.stack.requests_to("a")}
        self.stack.signal("a", signal.SIGKILL)
        time.sleep(RESTART_AT - KILL_AT)
        counts["while_dead"] = self.stack.requests_to("a") - counts["before_kill"]
        self.stack.start_instance("a", self.stack.ports["a"])
        wait_for(lambda: self.stack.servers()["a"]["status"] == "UP", 20, "HAProxy to see A again")
        counts["when_back"] = self.stack.requests_to("a")
        counts["back_after"] = time.monotonic() - load.started
        # On a busy machine A can take long to boot: the load goes on a little after it is back.
        time.sleep(max(LOAD_SECONDS - counts["back_after"], AFTER_RETURN))
        return counts


class Load:
    """`threads` keep-alive clients, each sending GETs back to back until stopped."""

    def __init__(self, base, path, token, threads):
        self.host, self.port = base.removeprefix("http://").split(":")
        self.path, self.token = path, token
        self.statuses = collections.Counter()
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.threads = [threading.Thread(target=self.client, daemon=True) for _ in range(threads)]

    def start(self):
        self.started = time.monotonic()
        for thread in self.threads:
            thread.start()

    def stop(self):
        self.done.set()
        for thread in self.threads:
            thread.join()
        self.seconds = time.monotonic() - self.started

    def client(self):
        connection = None
        headers = {"Authorization": f"Bearer {self.token}"}
        while not self.done.is_set():
            try:
                connection = connection or http.client.HTTPConnection(self.host, int(self.port), timeout=30)
                connection.request("GET", self.path, headers=headers)
                answer = connection.getresponse()
                body = answer.read()
                status = answer.status
                if status >= 500:  # whose answer: the app's JSON envelope, or the balancer's page
                    status = f"{status} from {'the app' if body.startswith(b'{') else 'HAProxy'}"
            except (OSError, http.client.HTTPException) as error:
                status, connection = f"no answer ({type(error).__name__})", None
            with self.lock:
                self.statuses[status] += 1


def bench(stack, a, lb, seconds, rounds=3):
    """wrk on A alone, on HAProxy over A only, and over A and B, alternated: median req/s of /v1/health."""
    figures = collections.defaultdict(list)
    for _ in range(rounds):
        for label, base, b_serves in (
            ("A direct", a, True),
            ("HAProxy, A only", lb, False),
            ("HAProxy, A+B", lb, True),
        ):
            stack.haproxy(f"{'enable' if b_serves else 'disable'} server app/b")
            output = subprocess.run(
                ["wrk", "-t2", "-c16", f"-d{seconds}s", f"{base}/v1/health"], capture_output=True, text=True, check=True
            ).stdout
            figures[label].append(
                float(next(line.split()[1] for line in output.splitlines() if "Requests/sec" in line))
            )
    medians = {label: sorted(values)[len(values) // 2] for label, values in figures.items()}
    print(
        f"bench (wrk -t2 -c16 GET /v1/health, median of {rounds} x {seconds} s): "
        + ", ".join(f"{label}: {value:.0f} req/s" for label, value in medians.items())
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", type=int, metavar="SECONDS", help="also measure one instance vs two")
    args = parser.parse_args()

    stack = Stack()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        stack.start_services()
        a_port, b_port, lb_port = free_port(), free_port(), free_port()
        a, b = stack.start_instance("a", a_port), stack.start_instance("b", b_port)
        lb = stack.start_balancer(lb_port, [("a", a_port), ("b", b_port)])
        checks = Checks(stack, a, b, lb)
        checks.run("a token issued by A works on B", checks.token_from_a_works_on_b)
        checks.run("logout on A is 401 on B", checks.logout_on_a_is_401_on_b)
        checks.run("a refresh token spent on A is refused on B", checks.spent_refresh_token_is_refused_elsewhere)
        checks.run("the failed-login limit counts across instances", checks.failed_login_limit_counts_across_instances)
        checks.run("an image uploaded on A is served by B, deleted on B gone on A", checks.image_crosses_instances)
        checks.run("an Idempotency-Key replay on the other instance", checks.idempotency_replay_crosses_instances)
        checks.run("SIGKILL A under load, restart it", checks.kill_under_load)
        for name in ("a", "b"):
            log = os.path.join(stack.work, f"{name}.log")
            if os.path.exists(log) and "Traceback" in open(log, errors="replace").read():
                checks.failed += 1
                print(f"FAILED: instance {name} logged a traceback")
        if args.bench:
            bench(stack, a, lb, args.bench)
    except Exception as error:  # noqa: BLE001 - the stack did not come up: one failure, reported
        print(f"FAILED: the stack: {type(error).__name__}: {error}")
        traceback.print_exc()
        checks = locals().get("checks") or argparse.Namespace(passed=0, failed=0)
        checks.failed += 1
    finally:
        stack.stop()
    print(f"scale-checks: {checks.passed} passed, {checks.failed} failed")
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
