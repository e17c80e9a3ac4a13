"""A real, private Ray head for cluster tests: `ray start --head --block` in a subprocess.

Why not the shared `ray_session`: job submission needs the dashboard's job server, and fault tests
need a head they may stop. Why `--block`: terminating that one process takes down exactly the Ray
it started (never `ray stop`, which would stop every Ray on the machine, other tests' included).
Its fixed-default ports are replaced by free ones, so it coexists with any other Ray here.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RayHead:
    """Start with `start()`, stop with `stop()`; `address` (GCS) and `job_address` (HTTP)."""

    def __init__(self, token: str | None = None, num_cpus: int = 2):
        self.token = token if token is not None else secrets.token_hex(32)
        self.num_cpus = num_cpus
        self.gcs_port, self.dashboard_port = free_port(), free_port()
        # short path: Ray's unix sockets live under it (107-character limit)
        self.temp_dir = tempfile.mkdtemp(prefix="rvh", dir="/tmp")
        self.proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.gcs_port}"

    @property
    def job_address(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def env(self, **extra) -> dict:
        """Environment for processes that talk to this head: its token, and this venv first on
        PATH (a job's `python -m cli` must find raviso)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        env.update(PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
                   RAY_USAGE_STATS_ENABLED="0")
        if self.token:
            env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=self.token)
        else:
            env.update(RAY_AUTH_MODE="disabled")
        env.update(extra)
        return env

    def start(self, timeout_s: float = 90) -> "RayHead":
        cmd = [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",
               f"--port={self.gcs_port}", f"--dashboard-port={self.dashboard_port}",
               "--include-dashboard=true", "--dashboard-host=127.0.0.1",
               f"--ray-client-server-port={free_port()}",
               f"--dashboard-agent-listen-port={free_port()}",
               f"--num-cpus={self.num_cpus}", "--object-store-memory=200000000",
               f"--temp-dir={self.temp_dir}", "--disable-usage-stats"]
        self.log = open(Path(self.temp_dir) / "head.log", "w")
        self.proc = subprocess.Popen(cmd, env=self.env(), stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ray start exited {self.proc.returncode}: {self.tail()}")
            try:
                # any answer means the job server is up (401 without the token)
                if requests.get(self.job_address + "/api/version", timeout=2).status_code < 500:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.5)
        log = self.tail()
        self.stop()
        raise RuntimeError(f"Ray head not up in {timeout_s} s: {log}")

    def tail(self) -> str:
        return (Path(self.temp_dir) / "head.log").read_text()[-2000:]

    def stop(self, timeout_s: float = 30) -> None:
        """SIGTERM the blocking `ray start`: it stops the processes it started and exits."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if getattr(self, "log", None):
            self.log.close()
        shutil.rmtree(self.temp_dir, ignore_errors=True)
