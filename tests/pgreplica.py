"""A PostgreSQL primary and streaming replicas of it, built on this machine for tests, CI and the bench.

    cluster = ReplicatedPostgres(replicas=1, apply_delay_ms=2000).start()   # about 3 s
    cluster.create_database("api")          # made on the primary, replicated like the rest
    cluster.url("primary", "api"), cluster.url("replica1", "api")
    cluster.pause_replay("replica1"); ...; cluster.resume_replay("replica1"); cluster.wait_for_replay()
    cluster.stop_server("replica1"); cluster.start_server("replica1")
    cluster.stop()                          # every server stopped, their files removed

The primary is a new cluster (initdb) in a temporary directory on a free port; each replica is
`pg_basebackup -R` of it (streaming, hot standby) into a directory of its own, on another port.
They run as the postgres user when this runs as root (PostgreSQL refuses root), and load
pg_stat_statements, so each can tell how often it ran a statement. The machine's own clusters are
never touched. `python -m tests.pgreplica` builds one (APPLY_DELAY_MS=...), prints its ports and
waits; Ctrl-C or SIGTERM removes it.
"""

import glob
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import psycopg2

from tests.helpers import free_port

# Settings of every server (the replicas get the primary's configuration through the backup).
# fsync off: these clusters hold throwaway data, and a test waits on no disk.
CONFIGURATION = """
listen_addresses = '127.0.0.1'
unix_socket_directories = '{sockets}'
fsync = off
wal_level = replica
max_wal_senders = 8
hot_standby = on
max_connections = 200
shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.track = all
"""


def server_binaries():
    """The directory of initdb, pg_ctl and pg_basebackup (the newest PostgreSQL installed), or None."""
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    if found:
        return os.path.dirname(max(found, key=lambda path: int(path.split("/")[-3])))
    located = [shutil.which(name) for name in ("initdb", "pg_ctl", "pg_basebackup")]
    return os.path.dirname(located[0]) if all(located) else None


def unavailable_reason():
    """Why no cluster can be built here, or None."""
    if server_binaries() is None:
        return "PostgreSQL's server binaries (initdb, pg_ctl, pg_basebackup) are not installed"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root, and there is no postgres user to run PostgreSQL as"
    return None


class ReplicatedPostgres:
    def __init__(self, replicas=1, apply_delay_ms=0):
        self.replicas = [f"replica{n}" for n in range(1, replicas + 1)]
        self.apply_delay_ms = apply_delay_ms
        self.bin = server_binaries()
        self.ports = {}
        self.work = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self):
        reason = unavailable_reason()
        if reason:
            raise RuntimeError(reason)
        self.work = tempfile.mkdtemp(prefix="pg-replicated-")
        try:
            self._build()
        except BaseException:
            self.stop()
            raise
        return self

    def _build(self):
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(self.work, entry.pw_uid, entry.pw_gid)
        self.ports = {role: free_port() for role in ["primary", *self.replicas]}
        primary = self._data("primary")
        self._run("initdb", "-D", primary, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C")
        with open(os.path.join(primary, "postgresql.conf"), "a") as conf:
            conf.write(CONFIGURATION.format(sockets=self.work))
        self.start_server("primary")
        for replica in self.replicas:
            self._run(
                "pg_basebackup",
                *("-h", "127.0.0.1", "-p", str(self.ports["primary"]), "-U", "postgres"),
                *("-D", self._data(replica), "-R", "-X", "stream", "--checkpoint=fast", "--no-sync"),
            )
            if self.apply_delay_ms:  # beside the primary_conninfo that -R wrote there
                with open(os.path.join(self._data(replica), "postgresql.auto.conf"), "a") as conf:
                    conf.write(f"recovery_min_apply_delay = '{int(self.apply_delay_ms)}ms'\n")
            self.start_server(replica)
        self._wait_until_streaming()

    def stop(self):
        if self.work is None:
            return
        for role in [*self.replicas, "primary"]:
            if os.path.exists(os.path.join(self._data(role), "postmaster.pid")):
                self._ctl(role, "stop", "-m", "immediate", check=False)
        shutil.rmtree(self.work, ignore_errors=True)
        self.work = None

    def stop_server(self, role):
        """A fast shutdown: its sessions are ended, new connections refused."""
        self._ctl(role, "stop", "-m", "fast")

    def start_server(self, role):
        self._ctl(role, "start", "-o", f"-p {self.ports[role]}", "-l", os.path.join(self.work, f"{role}.log"))

    # -- SQL --------------------------------------------------------------------------------

    def url(self, role, database="postgres"):
        return f"postgresql://postgres@127.0.0.1:{self.ports[role]}/{database}"

    def query(self, role, sql, database="postgres", params=None):
        """The first value of the first row of `sql` on `role` (autocommit), or None."""
        connection = psycopg2.connect(self.url(role, database), connect_timeout=5)
        connection.autocommit = True
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                row = cursor.fetchone() if cursor.description else None
                return row[0] if row else None
        finally:
            connection.close()

    def create_database(self, name):
        """A database on the primary, with pg_stat_statements; every replica has it when this returns."""
        self.query("primary", f'CREATE DATABASE "{name}"')
        self.query("primary", "CREATE EXTENSION IF NOT EXISTS pg_stat_statements", database=name)
        self.wait_for_replay()

    def pause_replay(self, replica, timeout=30):
        """The replica keeps receiving WAL but applies none of it: it falls behind by all that is
        written from now on (a pause is asked for, and taken at the next record: waited for here)."""
        self.query(replica, "SELECT pg_wal_replay_pause()")
        deadline = time.monotonic() + timeout
        while self.query(replica, "SELECT pg_get_wal_replay_pause_state()") != "paused":
            if time.monotonic() > deadline:
                raise RuntimeError(f"{replica} did not pause its replay within {timeout} s")
            time.sleep(0.01)

    def resume_replay(self, replica):
        self.query(replica, "SELECT pg_wal_replay_resume()")

    def wait_for_replay(self, replicas=None, timeout=30):
        """Until the replicas have applied all the primary had written when this was called (their
        apply delay included)."""
        target = self.query("primary", "SELECT pg_current_wal_lsn()")
        deadline = time.monotonic() + timeout + self.apply_delay_ms / 1000
        for replica in replicas or self.replicas:
            while True:
                try:
                    if self.query(replica, "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", params=(target,)):
                        break
                except psycopg2.OperationalError:
                    pass  # starting up
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{replica} did not replay {target} within {timeout} s")
                time.sleep(0.02)

    # -- helpers ----------------------------------------------------------------------------

    def _data(self, role):
        return os.path.join(self.work, role)

    def _wait_until_streaming(self, timeout=30):
        deadline = time.monotonic() + timeout
        while self.query("primary", "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'") < len(
            self.replicas
        ):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the replicas are not streaming after {timeout} s")
            time.sleep(0.05)

    def _ctl(self, role, action, *args, check=True):
        try:
            self._run("pg_ctl", action, "-D", self._data(role), "-w", "-t", "60", *args)
        except subprocess.CalledProcessError as error:
            if check:
                raise RuntimeError(f"pg_ctl {action} of {role} failed: {error.stderr}\n{self._log(role)}") from None

    def _log(self, role):
        try:
            with open(os.path.join(self.work, f"{role}.log"), errors="replace") as log:
                return log.read()[-3000:]
        except OSError:
            return "(no log)"

    def _run(self, program, *args):
        command = [os.path.join(self.bin, program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, text=True, cwd=self.work)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # a background job ignores Ctrl-C: kill it
    cluster = ReplicatedPostgres(apply_delay_ms=int(os.environ.get("APPLY_DELAY_MS", "0"))).start()
    print(f"ports: {cluster.ports}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()
