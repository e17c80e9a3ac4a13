"""`raviso submit`: run any raviso command on a Ray cluster as a Ray Job, and follow it.
Design notes: docs/stages.md."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import RavisoError
from .config import SubmitConfig

DEFAULT_ADDRESS = "http://127.0.0.1:8265"
PROBE_TIMEOUT_S = 10
# Dependencies the nodes must already have at versions matching the cluster (not pip-installed
# per job: a second Ray or a CPU torch on a GPU node would break the job).
NODE_PROVIDED = ("ray", "torch")
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


def job_address(address: str | None) -> str:
    """The job server's HTTP address: --address, else $RAY_API_SERVER_ADDRESS / an http
    $RAY_ADDRESS, else the local end of `ray dashboard`'s port-forward."""
    address = (address or os.environ.get("RAY_API_SERVER_ADDRESS")
               or (os.environ.get("RAY_ADDRESS") if "://" in os.environ.get("RAY_ADDRESS", "")
                   else None)
               or DEFAULT_ADDRESS)
    if address.startswith("ray://"):
        raise RavisoError(f"{address} is a Ray Client address; `raviso submit` needs the "
                          "dashboard address, e.g. http://127.0.0.1:8265 (see docs/cluster.md)")
    if "://" not in address:
        address = "http://" + address
    return address.rstrip("/")


def entrypoint(args: list[str]) -> str:
    """The shell command the job runs: this same CLI with the user's arguments, quoted."""
    if not args:
        raise RavisoError("nothing to submit: give the raviso command after --, e.g. "
                          "`raviso submit -- pretrain STORE RUN`")
    if args[0] == "submit":
        raise RavisoError("`raviso submit -- submit ...` would submit a job from a job")
    return "python -m cli " + shlex.join(str(a) for a in args)


def package_paths() -> tuple[str, str]:
    """The local `raviso` package directory and `cli.py`: what the job imports. cli.py is located,
    not imported: it is the layer above this one (it imports `submit`), and the job needs only its
    file."""
    import importlib.util

    import raviso

    spec = importlib.util.find_spec("cli")
    if spec is None or spec.origin is None:
        raise RavisoError("cannot find cli.py (is raviso installed? `pip install -e .`)")
    return str(Path(raviso.__file__).resolve().parent), str(Path(spec.origin).resolve())


@contextlib.contextmanager
def staged_cli(cli_path: str | None = None):
    """A private directory holding only a copy of cli.py: the job's working_dir (so `python -m cli`
    finds it). Ray's uploader takes directories and wheels, not single files, in py_modules; a
    working_dir of the whole checkout would also upload the user's stores and runs.

    Private because what is in it runs on the cluster with the user's token: `mkdtemp` makes a
    fresh, unpredictable directory with mode 0700 (never a predictable /tmp name another local
    user could create first, or point elsewhere with a symlink), cli.py is created with O_EXCL |
    O_NOFOLLOW, and owner, mode and content are checked before use. Removed on exit (Ray has
    uploaded it by then; its content hash still reuses an identical upload)."""
    import shutil
    import stat
    import tempfile

    cli_path = cli_path or package_paths()[1]
    data = Path(cli_path).read_bytes()
    d = tempfile.mkdtemp(prefix="raviso-submit-")
    try:
        target = os.path.join(d, "cli.py")
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        st = os.lstat(d)
        if (not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid()
                or stat.S_IMODE(st.st_mode) & 0o077 or Path(target).read_bytes() != data):
            raise RavisoError("the staging directory for cli.py is not private to you", d)
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def pip_requirements() -> list[str]:
    """raviso's declared dependencies minus those the nodes provide (`NODE_PROVIDED`)."""
    from importlib.metadata import PackageNotFoundError, requires

    from packaging.requirements import Requirement

    try:
        reqs = requires("raviso") or []
    except PackageNotFoundError:
        raise RavisoError("--with-deps needs raviso installed (pip install -e .)") from None
    out = []
    for spec in reqs:
        req = Requirement(spec)
        if req.marker is not None and "extra" in str(req.marker):
            continue
        if req.name.lower() not in NODE_PROVIDED:
            out.append(str(req))
    return out


def runtime_env(working_dir: str, with_deps: bool, env_vars: dict | None = None) -> dict:
    """Ship this checkout's code (`working_dir`: from `staged_cli`); make the job's own
    `init_ray` attach to the cluster it runs on (``RAVISO_RAY_ADDRESS=auto``) instead of starting
    a private Ray beside it."""
    package, _ = package_paths()
    env = {"py_modules": [package], "working_dir": str(working_dir),
           "env_vars": {"RAVISO_RAY_ADDRESS": "auto", "PYTHONUNBUFFERED": "1", **(env_vars or {})}}
    if with_deps:
        env["pip"] = pip_requirements()
    return env


@dataclass
class JobOutcome:
    job_id: str
    status: str
    exit_code: int


def connect(address: str):
    """A JobSubmissionClient, or a one-line error within PROBE_TIMEOUT_S if nobody answers.

    Ray's client has no connect timeout (a blackholed address hangs for minutes), so probe the
    version endpoint first with one.
    """
    import requests

    from ray.exceptions import AuthenticationError
    from ray.job_submission import JobSubmissionClient

    try:
        requests.get(address + "/api/version", timeout=PROBE_TIMEOUT_S)
    except requests.exceptions.RequestException as e:
        raise RavisoError(f"cannot reach the Ray job server ({type(e).__name__}); is the cluster "
                          "up and `ray dashboard cluster.yaml` forwarding port 8265?",
                          address) from None
    protect_token()
    _use_token_if_present()
    try:
        return JobSubmissionClient(address)
    except AuthenticationError as e:
        raise RavisoError(f"{str(e).splitlines()[0]} (the cluster uses token authentication: "
                          "set RAY_AUTH_MODE=token with its token in ~/.ray/auth_token or "
                          "RAY_AUTH_TOKEN)", address) from None
    except (ConnectionError, RuntimeError) as e:  # version too old, not a Ray job server
        raise RavisoError(str(e).splitlines()[0], address) from None


def protect_token(path=None) -> bool:
    """Make the local Ray token owner-only when others can read it (`ray get-auth-token
    --generate` writes it with the default umask; cluster.yaml copies it to every node).
    Returns whether it had to."""
    import stat

    path = Path(path or os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
    try:
        st = os.stat(path)
    except OSError:
        return False
    if st.st_uid != os.getuid() or not stat.S_IMODE(st.st_mode) & 0o077:
        return False
    os.chmod(path, 0o600)
    print(f"raviso: {path} was readable by other users; made it private (chmod 600)",
          file=sys.stderr)
    return True


def _use_token_if_present() -> None:
    """Send the token when the user has one (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or
    ~/.ray/auth_token) and RAY_AUTH_MODE is unset: the rule `ray.init` applies to local clusters.
    Ray's job client alone only sends it with RAY_AUTH_MODE=token."""
    try:
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )
    except ImportError:  # an older Ray without token authentication
        return
    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


AGENT_WAIT_S = 30.0   # a just-started head answers before its job agent is up


def submit_when_ready(client, wait_s: float = AGENT_WAIT_S, **job) -> str:
    """`client.submit_job`, retried while the head says it has no job agent yet (a head started
    seconds ago, or a busy one): the submission is refused only once that lasts `wait_s`."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return client.submit_job(**job)
        except RuntimeError as e:
            if "No available agent" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(1.0)


def submit(args: list[str], cfg: SubmitConfig | None = None, *, out=None,
           **options) -> JobOutcome:
    """Submit `raviso <args>` as a Ray Job; with ``cfg.wait``, stream its logs to `out` until it
    ends. `options`: SubmitConfig's fields as keywords."""
    cfg = SubmitConfig.build(cfg, **options)
    out = out or sys.stdout
    command = entrypoint(args)
    address = job_address(cfg.address)
    client = connect(address)
    try:
        with staged_cli() as working_dir:
            job_id = submit_when_ready(client, entrypoint=command,
                                       runtime_env=runtime_env(working_dir, cfg.with_deps),
                                       metadata={"raviso": command})
    except (RuntimeError, ValueError) as e:
        raise RavisoError(f"job submission refused: {str(e).splitlines()[0]}", address) from None
    print(f"raviso: submitted {job_id} to {address}: {command}", file=sys.stderr)
    if not cfg.wait:
        print(f"raviso: follow it with `ray job logs --follow --address {address} {job_id}`",
              file=sys.stderr)
        return JobOutcome(job_id, str(client.get_job_status(job_id).value), 0)
    follow_logs(client, job_id, out)
    return finish(client, job_id)


def follow_logs(client, job_id: str, out) -> None:
    """Print the job's output as it appears: Ray's websocket tail when aiohttp is installed
    (ray[default]), else polling the logs endpoint (plain HTTP) once a second."""
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        _poll_logs(client, job_id, out)
        return

    async def tail():
        async for chunk in client.tail_job_logs(job_id):
            out.write(chunk)
            out.flush()

    asyncio.run(tail())


def _poll_logs(client, job_id: str, out, interval: float = 1.0) -> None:
    shown = 0
    while True:
        status = str(client.get_job_status(job_id).value)
        logs = client.get_job_logs(job_id)
        if len(logs) > shown:
            out.write(logs[shown:])
            out.flush()
            shown = len(logs)
        if status in TERMINAL:
            return
        time.sleep(interval)


def finish(client, job_id: str, timeout_s: float = 30) -> JobOutcome:
    """Wait for the terminal state (logs can end a moment before it) and take the job's exit code:
    the driver's own when Ray recorded it, else 0 for SUCCEEDED and 1 otherwise."""
    deadline = time.monotonic() + timeout_s
    while True:
        info = client.get_job_info(job_id)
        status = str(info.status.value)
        if status in TERMINAL or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    code = getattr(info, "driver_exit_code", None)
    if code is None:
        code = 0 if status == "SUCCEEDED" else 1
    if status != "SUCCEEDED":
        code = code or 1
        reason = (info.message or "").splitlines()[0] if info.message else ""
        print(f"raviso: job {job_id} {status}: {reason}".rstrip(), file=sys.stderr)
    return JobOutcome(job_id, status, int(code))
