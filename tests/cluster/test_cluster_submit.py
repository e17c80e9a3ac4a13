"""`raviso submit`: the job it builds, and real submissions to a real Ray head (token auth on).

The live tests start a private head with the dashboard's job server (`cluster_head.RayHead`), run
`raviso submit` as a subprocess exactly as a user would, and check what comes back: the job's own
output streamed, its exit code, and one-line errors for a wrong token or no cluster at all.
"""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cluster_head import RayHead
from raviso.cluster import submit
from raviso.core.errors import RavisoError

ROOT = Path(__file__).resolve().parents[2]
RAVISO = str(Path(sys.executable).parent / "raviso")


def run_raviso(args, env=None, timeout=120):
    return subprocess.run([RAVISO, *args], capture_output=True, text=True, env=env,
                          timeout=timeout, cwd=ROOT)


# -- what is submitted ----------------------------------------------------------------------------
def test_entrypoint_quotes_arguments_for_the_shell():
    cmd = submit.entrypoint(["cv", "s3://bucket/my store", "--tissues", "Brain; rm -rf ~"])
    assert cmd == "python -m cli cv 's3://bucket/my store' --tissues 'Brain; rm -rf ~'"


@pytest.mark.parametrize("args, message", [
    ([], "nothing to submit"),
    (["submit", "--", "cv"], "would submit a job from a job"),
])
def test_entrypoint_refuses(args, message):
    with pytest.raises(RavisoError, match=message):
        submit.entrypoint(args)


def test_job_address(monkeypatch):
    monkeypatch.delenv("RAY_API_SERVER_ADDRESS", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert submit.job_address(None) == "http://127.0.0.1:8265"
    assert submit.job_address("10.0.0.5:8265/") == "http://10.0.0.5:8265"
    assert submit.job_address("https://ray.example.org") == "https://ray.example.org"
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.5:6379")       # a GCS address: not for jobs
    assert submit.job_address(None) == "http://127.0.0.1:8265"
    monkeypatch.setenv("RAY_API_SERVER_ADDRESS", "http://h:1")
    assert submit.job_address(None) == "http://h:1"
    with pytest.raises(RavisoError, match="Ray Client address"):
        submit.job_address("ray://10.0.0.5:10001")


def test_runtime_env_ships_this_checkout():
    with submit.staged_cli() as working_dir:
        env = submit.runtime_env(working_dir, False)
        (package,) = env["py_modules"]
        assert Path(package) == ROOT / "raviso"
        shipped = Path(env["working_dir"])
        assert sorted(p.name for p in shipped.iterdir()) == ["cli.py"]
        assert filecmp.cmp(shipped / "cli.py", ROOT / "cli.py", shallow=False)
    # the job's own init_ray attaches to the cluster it runs on
    assert env["env_vars"]["RAVISO_RAY_ADDRESS"] == "auto"
    assert "pip" not in env


def test_with_deps_pip_installs_all_but_ray_and_torch():
    reqs = submit.runtime_env("unused", with_deps=True)["pip"]
    names = {r.split(">")[0].split("=")[0].split("[")[0].strip().lower() for r in reqs}
    assert {"pyarrow", "h5py", "typer", "scikit-learn"} <= names
    assert not names & {"ray", "torch", "pytest", "jsonschema"}


def test_no_cluster_is_a_one_line_error_within_seconds():
    t0 = time.monotonic()
    r = run_raviso(["submit", "--address", "127.0.0.1:1", "--", "--help"], timeout=60)
    assert r.returncode == 1
    assert time.monotonic() - t0 < 30
    lines = r.stderr.strip().splitlines()
    assert lines[-1].startswith("raviso: error: http://127.0.0.1:1: cannot reach the Ray job server")
    assert "Traceback" not in r.stderr


# -- against a real head --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def head():
    h = RayHead().start()
    yield h
    h.stop()


@pytest.mark.ray
def test_job_runs_this_cli_and_streams_its_output(head):
    r = run_raviso(["submit", "--address", head.job_address, "--", "--help"], env=head.env())
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Usage: cli.py" in r.stdout          # the job's own output, streamed back
    assert "submit" in r.stdout                 # ... of this checkout's CLI
    assert "raviso: submitted raysubmit_" in r.stderr


@pytest.mark.ray
def test_job_exit_code_comes_back(head):
    r = run_raviso(["submit", "--address", head.job_address, "--", "no-such-command"],
                   env=head.env())
    assert r.returncode == 2                    # click's usage error, from the job's driver
    assert "No such command 'no-such-command'" in r.stdout
    assert r.stderr.strip().splitlines()[-1].startswith("raviso: job raysubmit_")
    assert "FAILED" in r.stderr


@pytest.mark.ray
def test_no_wait_returns_the_job_id(head):
    r = run_raviso(["submit", "--no-wait", "--address", head.job_address, "--", "--help"],
                   env=head.env())
    assert r.returncode == 0, r.stderr[-2000:]
    assert "ray job logs --follow" in r.stderr
    assert r.stdout == ""


@pytest.mark.ray
@pytest.mark.parametrize("token", [None, "not-the-token"])
def test_wrong_or_missing_token_is_refused_in_one_line(head, token):
    env = head.env()
    env.pop("RAY_AUTH_TOKEN")
    env.pop("RAY_AUTH_MODE")
    env["HOME"] = head.temp_dir                 # no ~/.ray/auth_token to fall back on
    if token:
        env["RAY_AUTH_TOKEN"] = token
    r = run_raviso(["submit", "--address", head.job_address, "--", "--help"], env=env)
    assert r.returncode == 1
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith(f"raviso: error: {head.job_address}: Authentication")
    assert ("Invalid" if token else "Missing") in last
    assert "Traceback" not in r.stderr
