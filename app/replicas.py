"""Reads from PostgreSQL streaming replicas (DATABASE_REPLICA_URLS); every client reads its own writes.

Which database serves a request (decided in `route_reads`, before the view runs):
- Anything but GET and HEAD, and a GET or HEAD without a verified bearer token (the health check),
  runs on the primary, its reads included.
- A user's GET or HEAD goes to a replica that has replayed the user's last write: the primary's WAL
  position after it, kept in Redis by whichever worker of whichever instance served the write, and
  heard by every process from there (`Positions`). No position kept (the user wrote nothing
  lately): any usable replica. None fits: the primary.
- Once a request writes (a GET may: an external identity's first request creates its account), it
  runs on the primary to its end: the session's `get_bind` (app.extensions) sends flushes and
  INSERT / UPDATE / DELETE there, and every statement after them.
- A usable replica answers and lags at most DATABASE_REPLICA_MAX_LAG_MS. One that fails, or lags
  more, is skipped for DATABASE_REPLICA_RETRY_SECONDS (a circuit breaker), and a read it failed runs
  again on the primary (`or_primary`): no replica error ever reaches a client.

Write positions (`note_writes`): after a request's writes committed, the primary's
pg_current_wal_lsn() is kept for its caller and for every account whose rows it changed (a
registration, a new session, an admin's role change or deletion: `wrote_for`), so that a
revocation reaches every replica path at once. A position lives DATABASE_REPLICA_MAX_LAG_MS +
`check_every` + POSITION_MARGIN_SECONDS: by then every usable replica has replayed it, since each
is measured at least every `check_every` and lags at most the maximum.

Lag: at most the smaller of two bounds, each sound where the other is blind. How long ago the
primary was at the position a replica has replayed, from the primary's positions this process has
seen (`PrimaryClock`): it needs a history, which a young process lacks. And how old the last
transaction the replica replayed is (pg_last_xact_replay_timestamp()): too much while the primary
is idle, never too little. A replica is skipped for lagging only when the clock shows it.

Redis unreachable, or the subscription silent: this process reads from the primary until Redis has
answered again for a position's lifetime. Redis emptied and restarted: every process that subscribes
again does, for that long.
"""

import hashlib
import itertools
import logging
import os
import threading
import time
from collections import deque

import psycopg2
from flask import current_app, g, has_request_context, request
from sqlalchemy import event, inspect
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from app import auth, database
from app.extensions import Session, db
from app.models import User

log = logging.getLogger("app.replicas")

REPLICA_ERRORS = (DBAPIError, DisconnectionError, PoolTimeoutError)
LAG_CHECK_SECONDS = 0.25  # a replica's lag is measured at least this often (and 4 times per maximum lag)
POSITION_MARGIN_SECONDS = 1.0  # a position outlives the longest a usable replica can take to replay it by this
SAMPLE_SPACING_SECONDS = 0.01  # primary positions closer in time than this replace each other
REDIS_TIMEOUT_SECONDS = 0.5  # a Redis that does not answer costs a request at most this, then is left alone
FENCE_SECONDS = 0.5  # a process trusts its mirror of the positions if it was complete this recently...
PING_SECONDS = 0.1  # ... and a process reading keeps it so by pinging its subscription this often
UNKNOWN = 2**64 - 1  # the position of a write whose LSN could not be read: no replica ever reaches it

# Raise each account's position (KEYS[2], ...) to ARGV[1] (16 hex digits: text order is LSN order),
# never lower it (two writes of one user may finish out of order), keep it ARGV[2] ms from now and
# list it in KEYS[1] as long; then tell every process, on channel ARGV[3]: "<position> <key> ...".
RAISE_POSITIONS = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
for i = 2, #KEYS do
  local key = KEYS[i]
  local current = redis.call('GET', key)
  if current and current >= ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
  else
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
  end
  redis.call('ZADD', KEYS[1], now_ms + tonumber(ARGV[2]), key)
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
redis.call('PUBLISH', ARGV[3], ARGV[1] .. ' ' .. table.concat(KEYS, ' ', 2))
"""

# Whether the positions were kept (KEYS[1] exists), how long reads still settle (KEYS[2]'s PTTL),
# and the keys of the positions listed as alive (KEYS[3]).
ALIVE_POSITIONS = """
return {redis.call('EXISTS', KEYS[1]), redis.call('PTTL', KEYS[2]), redis.call('ZRANGE', KEYS[3], 0, -1)}
"""


# What a replica has replayed, and how long ago the last transaction it replayed committed (NULL
# before it replayed any): commits replay in order, so it has every one committed before that.
MEASURE_REPLICA = (
    "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn(), "
    "extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp())"
)


def parse_lsn(text):
    """A pg_lsn's text (`16/B374D848`) as the byte position it names."""
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


def _one_row(engine, sql):
    """One row of `sql`, on a pooled connection of `engine` in autocommit: one round trip, no BEGIN."""
    with engine.connect() as connection:
        connection.connection.dbapi_connection.autocommit = True  # reset when it goes back to the pool
        return connection.exec_driver_sql(sql).first()


class PrimaryClock:
    """The primary's WAL positions this process saw, and when: (monotonic time, LSN), oldest first.

    A sample (t, L) says the primary had written at most L at time t (the query was sent at t and
    answered L or more). So a replica that replayed L or more had everything the primary committed
    by t: it lags at most now - t. Samples older than `horizon` seconds are dropped.
    """

    def __init__(self, horizon):
        self.horizon = horizon
        self._samples = deque()
        self._lock = threading.Lock()

    def newest(self):
        samples = self._samples
        return samples[-1][0] if samples else float("-inf")

    def add(self, when, lsn):
        with self._lock:
            samples = self._samples
            if samples and when - samples[-1][0] < SAMPLE_SPACING_SECONDS:
                if lsn >= samples[-1][1]:
                    samples[-1] = (max(when, samples[-1][0]), lsn)
                return
            samples.append((when, lsn))
            while samples[0][0] < when - self.horizon:
                samples.popleft()

    def lag(self, replayed, now):
        """(at most, at least) seconds behind for a replica that replayed `replayed`; at most is None
        when no sample proves a bound (the replica is behind every position seen lately)."""
        newest_replayed = oldest_missing = None
        with self._lock:
            for when, lsn in self._samples:
                if lsn <= replayed:
                    newest_replayed = when if newest_replayed is None else max(newest_replayed, when)
                elif oldest_missing is None or when < oldest_missing:
                    oldest_missing = when
        at_most = None if newest_replayed is None else now - newest_replayed
        at_least = 0.0 if oldest_missing is None else now - oldest_missing
        return at_most, at_least


class Replica:
    """One replica's state in this process: its breaker, and what it was last seen to have replayed."""

    def __init__(self, name, engine):
        self.name, self.engine = name, engine
        self.skipped_until = float("-inf")  # the breaker is open until then
        self.verdict_until = float("-inf")  # the last lag check holds until then
        self.usable = False  # ... and found this
        self.replayed = 0  # an LSN it has certainly replayed
        self.checking = threading.Lock()


class Positions:
    """Each account's last write position: kept in the Redis at REDIS_URL, which every worker and
    instance shares, and mirrored in each process, so that a read costs no round trip to Redis.

    A write raises its accounts' keys and publishes them on `<prefix>:wal:raised`, in one script
    (RAISE_POSITIONS). Each process subscribes to that channel; once subscribed, it loads the
    positions still alive (listed in `<prefix>:wal:recent`), and from then on hears every new one.
    Before each read it takes what has arrived (a poll of the socket, about 5 µs). What is still on
    its way is the one gap, so the mirror is trusted only while it holds every position published
    until FENCE_SECONDS ago: a ping on the subscription is answered after every message published
    before it, and a reading process pings every PING_SECONDS without waiting. A process that read
    nothing for longer pings and waits for the answer.

    `<prefix>:wal:kept` never expires: when a process subscribing finds it missing, Redis lost the
    positions (a restart, a flush, an eviction), and `<prefix>:wal:settling` then sends the reads of
    every process subscribing meanwhile to the primary for a position's lifetime. A process that
    stayed subscribed keeps its mirror: it lost nothing.
    """

    def __init__(self, url, prefix, issuer, lifetime):
        # Imported here, with replicas only: redis-py loads OpenTelemetry when it is installed, which
        # an app without tracing must not (app.tracing).
        import redis

        self._library = redis
        self._url, self._redis, self._pid = url, None, None
        self._prefix = f"{prefix}:wal:"
        self._kept, self._settling = f"{prefix}:wal:kept", f"{prefix}:wal:settling"
        self._recent, self._channel = f"{prefix}:wal:recent", f"{prefix}:wal:raised"
        self._issuer = issuer
        self.lifetime = lifetime
        self._unsure_until = float("-inf")  # Redis failed this process, or lost the positions: primary till then
        self._listening = threading.Lock()  # one thread at a time reads the subscription and changes the mirror
        self._subscription = None
        self._seen = {}  # the mirror: key -> (position, when this process may forget it)
        self._fence = float("-inf")  # the mirror holds every position published before then
        self._ping = None  # (token, when sent) of the ping whose answer is awaited
        self._pings = itertools.count()
        self._swept = float("-inf")

    def key(self, identity):
        """The key of an account: ours by id, an external issuer's by a digest of issuer and subject."""
        if identity[0] == "user":
            return f"{self._prefix}u{identity[1]}"
        digest = hashlib.sha256(f"{identity[1]}\n{identity[2]}".encode()).hexdigest()[:32]
        return f"{self._prefix}x{digest}"

    def key_of(self, user):
        loaded = inspect(user).dict  # never a lazy load (this runs inside a flush too)
        if loaded.get("external_id") is not None:
            return self.key(("external", self._issuer, loaded["external_id"]))
        return self.key(("user", str(loaded["id"])))

    # -- reads --------------------------------------------------------------------------------

    def read(self, key):
        """(True, the account's position or None), or (False, None) when positions cannot be trusted now."""
        with self._listening:  # a thread that waited for it may find that Redis failed meanwhile
            if time.monotonic() >= self._unsure_until:
                try:
                    self._catch_up()
                except self._library.RedisError as error:
                    self._failed(error)
        now = time.monotonic()
        if now < self._unsure_until:  # Redis failed, or was found to have lost the positions
            return False, None
        seen = self._seen.get(key)
        return True, None if seen is None or seen[1] < now else seen[0]

    def _catch_up(self):
        """Take what arrived on the subscription, and make sure the mirror is complete up to
        FENCE_SECONDS ago at least."""
        subscription = self._subscribed()
        while (message := subscription.get_message(timeout=0)) is not None:
            self._take(message)
        now = time.monotonic()
        if now - self._fence > FENCE_SECONDS:
            self._wait_for(self._send_ping(now))
        elif self._ping is None and now - self._fence > PING_SECONDS:
            self._send_ping(now)
        if now - self._swept > self.lifetime:
            self._seen = {key: seen for key, seen in self._seen.items() if seen[1] >= now}
            self._swept = now

    def _subscribed(self):
        """This process's subscription, made when first needed (and again after a fork or a failure)."""
        if self._pid != os.getpid():
            self._subscription = None
            self._client()
        if self._subscription is None:
            self._seen, self._fence, self._ping = {}, float("-inf"), None
            # Named, for CLIENT LIST: `<prefix>:wal:listener`.
            subscription = self._connect(single=False, name=f"{self._prefix}listener").pubsub()
            subscription.subscribe(self._channel)  # answered by a `subscribe` message: then `_load`
            # redis-py subscribes again by itself on a new connection: until then, incomplete.
            subscription.connection.register_connect_callback(self._reconnected)
            self._subscription = subscription
        return self._subscription

    def _reconnected(self, _connection):
        self._fence, self._ping = float("-inf"), None

    def _take(self, message):
        kind, data = message["type"], message["data"]
        if kind == "message":
            position, *keys = data.decode().split()
            self._remember(keys, int(position, 16))
        elif kind == "pong" and self._ping is not None and data == self._ping[0]:
            self._fence, self._ping = max(self._fence, self._ping[1]), None
        elif kind == "subscribe":
            self._load()

    def _send_ping(self, now):
        token = str(next(self._pings)).encode()
        self._subscription.ping(token)
        self._ping = (token, now)
        return token

    def _wait_for(self, token):
        """Take the subscription's messages until the answer to ping `token` (at most REDIS_TIMEOUT_SECONDS)."""
        deadline = time.monotonic() + REDIS_TIMEOUT_SECONDS
        while self._ping is not None and self._ping[0] == token:
            left = deadline - time.monotonic()
            message = self._subscription.get_message(timeout=left) if left > 0 else None
            if message is None:
                raise self._library.TimeoutError("the subscription did not answer a ping")
            self._take(message)

    def _load(self):
        """Just subscribed: take the positions kept before, and learn whether Redis lost them."""
        started = time.monotonic()
        client = self._client()
        kept, settling_ms, listed = self._alive(keys=[self._kept, self._settling, self._recent])
        keys = [key.decode() for key in listed]
        for start in range(0, len(keys), 1000):
            chunk = keys[start : start + 1000]
            for key, position in zip(chunk, client.mget(chunk), strict=True):
                if position is not None:
                    self._remember([key], int(position, 16), started)
        if not kept:
            log.warning("replicas: Redis lost the write positions; primary only for %.1f s", self.lifetime)
            settling_ms = int(self.lifetime * 1000)
            client.set(self._settling, 1, px=settling_ms, nx=True)
            client.set(self._kept, 1)
        if settling_ms > 0:
            self._unsure_until = max(self._unsure_until, started + settling_ms / 1000)
        self._fence = max(self._fence, started)

    # -- writes -------------------------------------------------------------------------------

    def raise_to(self, keys, lsn):
        with self._listening:
            self._remember(keys, lsn)
        try:
            self._client()
            self._raise(
                keys=[self._recent, *sorted(keys)], args=[f"{lsn:016x}", int(self.lifetime * 1000), self._channel]
            )
        except self._library.RedisError as error:
            with self._listening:
                self._failed(error)

    def _remember(self, keys, position, now=None):
        forget_at = (time.monotonic() if now is None else now) + self.lifetime
        for key in keys:
            known = self._seen.get(key)
            self._seen[key] = (position if known is None else max(position, known[0]), forget_at)

    # -- Redis ----------------------------------------------------------------------------------

    def _connect(self, single, name=None):
        """A client of REDIS_URL whose every call waits at most REDIS_TIMEOUT_SECONDS: a Redis that
        does not answer is then left alone (`_failed`)."""
        return self._library.Redis.from_url(
            self._url,
            client_name=name,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
            single_connection_client=single,
        )

    def _client(self):
        """This process's one connection for commands, made when first needed (and again after a fork).

        One connection, not redis-py's pool: a command then costs no checkout, which the pool makes
        with a poll of the socket. Its commands take turns.
        """
        if self._pid != os.getpid():
            self._redis = self._connect(single=True)
            self._raise = self._redis.register_script(RAISE_POSITIONS)
            self._alive = self._redis.register_script(ALIVE_POSITIONS)
            self._pid = os.getpid()
        return self._redis

    def _failed(self, error):
        """Redis failed: positions written meanwhile may be missing, so the primary for a position's
        lifetime; then subscribe again and reload."""
        if time.monotonic() >= self._unsure_until:
            log.warning("replicas: Redis failed (%s); reading from the primary for %.1f s", error, self.lifetime)
        self._unsure_until = time.monotonic() + self.lifetime
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            subscription.close()


class Router:
    """This process's view of the replicas, and the choice of one for a read."""

    def __init__(self, config, engines):
        self.max_lag = config["DATABASE_REPLICA_MAX_LAG_MS"] / 1000
        self.retry = config["DATABASE_REPLICA_RETRY_SECONDS"]
        self.check_every = min(LAG_CHECK_SECONDS, self.max_lag / 4)
        lifetime = self.max_lag + self.check_every + POSITION_MARGIN_SECONDS
        self.primary = engines[None]
        self.replicas = [Replica(name, engine) for name, engine in engines.items() if name is not None]
        self.clock = PrimaryClock(horizon=lifetime + self.retry)
        self.positions = Positions(config["REDIS_URL"], config["REDIS_KEY_PREFIX"], config["OIDC_ISSUER"], lifetime)
        self._turns = itertools.count()
        self._sampling = threading.Lock()

    # -- reads --------------------------------------------------------------------------------

    def choose(self, identity):
        """The replica to serve a read of `identity`, or None for the primary."""
        now = time.monotonic()
        start = next(self._turns) % len(self.replicas)
        candidates = [
            replica
            for replica in self.replicas[start:] + self.replicas[:start]
            if replica.skipped_until <= now and (replica.usable or now >= replica.verdict_until)
        ]
        if not candidates or not self._sample_primary(now):
            return _primary("no replica is usable" if not candidates else "the primary's position is unknown")
        trusted, position = self.positions.read(self.positions.key(identity))
        if not trusted:
            return _primary("the write positions cannot be trusted now")
        usable = False
        for replica in candidates:
            if now >= replica.verdict_until:
                self._check(replica)
            if not replica.usable or time.monotonic() < replica.skipped_until:
                continue
            usable = True
            if position is None or replica.replayed >= position or self._replayed(replica) >= position:
                return replica
        return _primary("no usable replica has replayed the user's last write" if usable else "no replica is usable")

    def _sample_primary(self, now):
        """Keep the clock's samples no older than `check_every`. False if the primary did not answer:
        then no lag can be measured, and the request meets the primary's outage as it would without
        replicas."""
        if now - self.clock.newest() < self.check_every or not self._sampling.acquire(blocking=False):
            return True
        try:
            sent = time.monotonic()
            self.clock.add(sent, parse_lsn(_one_row(self.primary, "SELECT pg_current_wal_lsn()")[0]))
            return True
        except REPLICA_ERRORS:
            return False
        finally:
            self._sampling.release()

    def _check(self, replica):
        """Measure the replica's lag: usable until the next check, skipped if it lags too much or fails."""
        if not replica.checking.acquire(blocking=False):
            return  # another thread is measuring it; the last verdict stands meanwhile
        try:
            in_recovery, replayed, replay_age = _one_row(replica.engine, MEASURE_REPLICA)
        except REPLICA_ERRORS as error:
            self.skip(replica, f"did not answer ({error.__class__.__name__})")
            return
        finally:
            replica.checking.release()
        if not in_recovery or replayed is None:
            self.skip(replica, "is not a streaming replica (not in recovery)")
            return
        now = time.monotonic()
        replica.replayed = max(replica.replayed, parse_lsn(replayed))
        at_most, at_least = self.clock.lag(replica.replayed, now)
        if replay_age is not None:  # it replayed every transaction committed up to that long ago
            at_most = float(replay_age) if at_most is None else min(at_most, float(replay_age))
        replica.usable = at_most is not None and at_most <= self.max_lag
        log.debug("replicas: %s lags at most %s s, at least %.3f s", replica.name, at_most, at_least)
        if replica.usable:
            replica.verdict_until = now + self.check_every
        elif at_least > self.max_lag:
            self.skip(replica, f"lags {at_least * 1000:.0f} ms")
        # else: not shown to lag less, nor more (a young process, an idle primary): measured again by
        # the next read

    def _replayed(self, replica):
        """What the replica has replayed now (asked of it), or -1 if it failed."""
        try:
            (replayed,) = _one_row(replica.engine, "SELECT pg_last_wal_replay_lsn()")
        except REPLICA_ERRORS as error:
            self.skip(replica, f"did not answer ({error.__class__.__name__})")
            return -1
        replica.replayed = max(replica.replayed, parse_lsn(replayed))
        return replica.replayed

    def skip(self, replica, why):
        """Open the replica's breaker: no read goes to it for `retry` seconds, then it is measured again."""
        if replica.skipped_until < time.monotonic():
            log.warning("replicas: %s %s; skipped for %.1f s", replica.name, why, self.retry)
        replica.skipped_until = time.monotonic() + self.retry
        replica.usable, replica.verdict_until = False, float("-inf")
        if "lags" not in why:
            replica.replayed = 0  # it may come back as another server

    # -- writes -------------------------------------------------------------------------------

    def record(self, keys):
        """Keep the primary's position, just after a commit, as the last write of each account in `keys`."""
        sent = time.monotonic()
        try:
            lsn = parse_lsn(_one_row(self.primary, "SELECT pg_current_wal_lsn()")[0])
        except REPLICA_ERRORS:
            lsn = UNKNOWN  # these accounts read from the primary until the position expires
        else:
            self.clock.add(sent, lsn)
        self.positions.raise_to(keys, lsn)


def _primary(why):
    """None (the primary), saying why at DEBUG level."""
    log.debug("replicas: a read on the primary: %s", why)


# -- the request ----------------------------------------------------------------------------------


def init_app(app):
    """With DATABASE_REPLICA_URLS: the router, and the primary's events that keep write positions;
    True. Without: nothing at all, False. The request's hooks (route_reads, note_writes,
    forget_route) are registered by app.pipeline."""
    if not app.config["DATABASE_REPLICA_URLS"]:
        return False
    with app.app_context():
        engines = dict(db.engines)
    router = Router(app.config, engines)
    app.extensions["replicas"] = router
    event.listen(router.primary, "after_cursor_execute", _wrote)
    event.listen(router.primary, "commit", _committed)
    event.listen(router.primary, "rollback", _rolled_back)
    return True


def route_reads():
    """before_request, after the bearer was verified and the request admitted: where its reads go."""
    g.read_replica = None
    if request.method not in database.READ_METHODS:
        return
    identity = auth.bearer_identity()
    if identity is not None:
        g.read_replica = current_app.extensions["replicas"].choose(identity)


def forget_route(_exc=None):
    g.pop("read_replica", None)


def or_primary(dispatch):
    """Run the view; if the replica it read from failed, run it again on the primary.

    Safe: until it writes (then it is on the primary), a read changed nothing. The replica's
    breaker opens only for failures of the replica itself, not for a statement any server refuses.
    """
    replica = g.get("read_replica")
    if replica is None:
        return dispatch()
    try:
        return dispatch()
    except REPLICA_ERRORS as error:
        if g.get("read_replica") is not replica:
            raise  # it had moved to the primary: the primary's error, answered as ever
        if _is_replica_failure(error):
            current_app.extensions["replicas"].skip(replica, f"failed a read ({error.__class__.__name__})")
        else:
            log.warning(
                "replicas: %s refused a read (%s); run again on the primary", replica.name, error.__class__.__name__
            )
        g.read_replica = None
        database.end_session()
        return dispatch()


def _is_replica_failure(error):
    if not isinstance(error, DBAPIError) or error.connection_invalidated:
        return True
    return isinstance(error.orig, psycopg2.OperationalError)  # cut, shut down, timed out, recovery conflict


def wrote_for(user):
    """This request changes `user`'s account or tokens: their next reads must see it (see `note_writes`)."""
    router = current_app.extensions.get("replicas")
    if router is not None and has_request_context():
        _note(router.positions.key_of(user))


def _note(key):
    g.setdefault("replica_accounts", set()).add(key)


def note_writes(response):
    """after_request, before the answer leaves: if the request committed writes, keep the primary's
    position for its caller and every account it wrote for."""
    accounts = g.pop("replica_accounts", set())
    if not g.pop("replica_wrote", False):
        return response
    router = current_app.extensions["replicas"]
    identity = auth.bearer_identity()
    if identity is not None:
        accounts.add(router.positions.key(identity))
    if accounts:
        router.record(accounts)
    return response


# -- what was written -----------------------------------------------------------------------------


def _wrote(connection, _cursor, _statement, _parameters, context, _executemany):
    """An INSERT, UPDATE or DELETE ran on the primary: committed at once in autocommit (a GET), else
    when its transaction commits."""
    if has_request_context() and (context.isinsert or context.isupdate or context.isdelete):
        if connection.connection.dbapi_connection.autocommit:
            g.replica_wrote = True
        else:
            connection.info["replica_wrote"] = True


def _committed(connection):
    if connection.info.pop("replica_wrote", False) and has_request_context():
        g.replica_wrote = True


def _rolled_back(connection):
    connection.info.pop("replica_wrote", None)


@event.listens_for(Session, "after_flush")
def _accounts_flushed(session, _context):
    """Rows of accounts, and rows that belong to one (`user_id`: sessions, revocations...), written
    through the ORM: their accounts' next reads must see them."""
    if not has_request_context() or "replicas" not in current_app.extensions:
        return
    positions = current_app.extensions["replicas"].positions
    for row in itertools.chain(session.new, session.dirty, session.deleted):
        loaded = inspect(row).dict  # what is loaded: reading an expired attribute here would query mid-flush
        if isinstance(row, User):
            _note(positions.key_of(row))
        elif isinstance(loaded.get("user_id"), int):
            _note(positions.key(("user", str(loaded["user_id"]))))
