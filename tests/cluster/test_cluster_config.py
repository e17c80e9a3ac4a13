"""Every shipped cluster config is one the installed Ray's launcher accepts, and none of them opens
the dashboard/jobs port or turns Ray's token authentication off.

`ray up` has no dry run, so the launcher's own offline checks are the test: the JSON schema inside
the installed package (strict: unknown keys fail) and `prepare_config` + `validate_config`, which
merge Ray's provider defaults exactly as `ray up` does.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

import ray
import ray.autoscaler
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted(ROOT.glob("cluster*.yaml"))
DASHBOARD_PORT = 8265


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def schema() -> dict:
    return json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())


def test_both_configs_are_shipped():
    names = {p.name for p in CONFIGS}
    assert {"cluster.yaml", "cluster-local.yaml"} <= names
    assert load(ROOT / "cluster.yaml")["provider"]["type"] == "aws"
    local = load(ROOT / "cluster-local.yaml")["provider"]
    assert local["type"] == "local" and local["head_ip"] and local["worker_ips"]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_passes_rays_schema_and_launcher_checks(path, schema):
    config = load(path)
    jsonschema.validate(config, schema)
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    assert prepared["head_node_type"] in prepared["available_node_types"]


def test_schema_check_is_live(schema):
    """The same validation rejects what `ray up` rejects (a top-level min_workers)."""
    bad = load(ROOT / "cluster.yaml")
    bad["min_workers"] = 1
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
    bad = load(ROOT / "cluster.yaml")
    bad["available_node_types"]["worker.gpu"]["instance_type"] = "p5.4xlarge"
    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepare_config(bad))


def _start_commands(config: dict) -> list[str]:
    return config["head_start_ray_commands"] + config["worker_start_ray_commands"]


def _opens_port(rule: dict, port: int) -> bool:
    if str(rule.get("IpProtocol")) == "-1":
        return True
    lo, hi = int(rule.get("FromPort", -1)), int(rule.get("ToPort", -1))
    return lo <= port <= hi


def dashboard_exposures(config: dict) -> list[str]:
    """Every way this config makes port 8265 reachable from outside the cluster."""
    found = []
    for rule in config["provider"].get("security_group", {}).get("IpPermissions", []):
        if _opens_port(rule, DASHBOARD_PORT) and (rule.get("IpRanges") or rule.get("Ipv6Ranges")
                                                   or rule.get("PrefixListIds")):
            found.append(f"security group rule {rule}")
    # explicit, not Ray's default: the launcher's own AWS defaults pass --dashboard-host=0.0.0.0
    head = " ".join(config["head_start_ray_commands"])
    m = re.search(r"--dashboard-host[= ](\S+)", head)
    if m is None or m.group(1) not in ("127.0.0.1", "localhost"):
        found.append(f"head binds the dashboard to {m.group(1) if m else 'the default'}")
    return found


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_dashboard_port_is_never_exposed(path):
    assert dashboard_exposures(load(path)) == []


def test_exposure_check_catches_an_open_8265():
    config = load(ROOT / "cluster.yaml")
    config["provider"].setdefault("security_group", {})["IpPermissions"] = [
        {"FromPort": 8000, "ToPort": 9000, "IpProtocol": "tcp",
         "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
    config["head_start_ray_commands"] = [
        c.replace("--dashboard-host=127.0.0.1", "--dashboard-host=0.0.0.0")
        for c in config["head_start_ray_commands"]]
    assert len(dashboard_exposures(config)) == 2


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_token_authentication_stays_on(path):
    config = load(path)
    text = path.read_text()
    assert "RAY_AUTH_MODE=disabled" not in text
    starts = [c for c in _start_commands(config) if "ray start" in c]
    assert len(starts) == 2
    for command in starts:
        assert "RAY_AUTH_MODE=token" in command, command
    # every node gets the same token the user's machine holds (and sends with `raviso submit`)
    assert config["file_mounts"].get("~/.ray/auth_token") == "~/.ray/auth_token"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_node_type_installs_ray_and_raviso(path):
    """A node type's own worker_setup_commands replace the global ones, so check what each node
    type really runs, after the launcher's own merging."""
    prepared = prepare_config(load(path))
    assert prepared["file_mounts"]["~/raviso/raviso"] == "./raviso"
    pin = f"=={ray.__version__}"
    for name, node_type in prepared["available_node_types"].items():
        if name == prepared["head_node_type"]:
            commands = prepared["head_setup_commands"]
        else:
            commands = node_type.get("worker_setup_commands", prepared["worker_setup_commands"])
        joined = "\n".join(commands)
        assert re.search(r"ray\[default[^\]]*\]" + re.escape(pin), joined), (name, joined)
        assert re.search(r"pip install .*-e ~/raviso", joined), (name, joined)


def test_aws_config_has_autoscaling_gpu_and_cpu_workers():
    types = load(ROOT / "cluster.yaml")["available_node_types"]
    head = load(ROOT / "cluster.yaml")["head_node_type"]
    gpu = [t for n, t in types.items() if t["resources"].get("GPU", 0) > 0]
    cpu = [t for n, t in types.items() if n != head and t["resources"].get("GPU", 0) == 0]
    assert types[head]["resources"].get("GPU", 0) == 0
    assert gpu and all(t["min_workers"] == 0 < t["max_workers"] for t in gpu)
    assert cpu and all(t["max_workers"] > t["min_workers"] for t in cpu)
    # GPU nodes take the CUDA build of torch, the others the CPU build
    gpu_setup = "\n".join(gpu[0]["worker_setup_commands"])
    assert "whl/cu" in gpu_setup


# -- least privilege, private token, no data on the nodes -------------------
CODE = {"raviso", "bench", "cli.py", "pyproject.toml", "README.md"}


def synced_sources(config: dict) -> dict[str, str]:
    """Remote path -> local source of everything `ray up` rsyncs from the checkout."""
    return {remote: local for remote, local in config["file_mounts"].items()
            if not local.startswith("~")}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_only_code_is_copied_to_the_nodes(path):
    """A store converted into the checkout (docs/cluster.md's `raviso convert course-data/ store`)
    must not be rsynced to every node: only the code is mounted, and data suffixes are excluded."""
    config = prepare_config(load(path))
    sources = synced_sources(config)
    assert sources, "the code must still reach the nodes"
    for remote, local in sources.items():
        rel = Path(local).as_posix().removeprefix("./")
        assert rel in CODE, f"{remote} <- {local} copies more than the code"
        assert remote == f"~/raviso/{rel}"
    for pattern in ("**/*.parquet", "**/*.h5", "**/manifest.json", "**/*.safetensors"):
        assert pattern in config["rsync_exclude"], pattern


def test_mounted_code_is_installable(tmp_path):
    """`pip install -e ~/raviso` on a node sees only the mounted paths: they must be enough to
    build raviso (a package missing from the list would break every node's setup)."""
    import shutil
    import subprocess
    import sys

    node = tmp_path / "raviso"
    node.mkdir()
    for local in synced_sources(load(ROOT / "cluster.yaml")).values():
        src = ROOT / local
        if src.is_dir():
            shutil.copytree(src, node / src.name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copyfile(src, node / src.name)
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                        "-q", "-w", str(tmp_path / "wheel"), str(node)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    import zipfile

    (wheel,) = (tmp_path / "wheel").glob("raviso-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "cli.py" in names and any(n.startswith("raviso/") for n in names)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_token_file_is_private_on_every_node(path):
    """`ray get-auth-token --generate` writes the token world-readable (default umask) and rsync
    keeps that mode; every node makes it owner-only before Ray starts."""
    config = load(path)
    for commands in (config["head_start_ray_commands"], config["worker_start_ray_commands"]):
        start = next(i for i, c in enumerate(commands) if "ray start" in c)
        assert any("chmod 600 ~/.ray/auth_token" in c for c in commands[:start]), commands


def test_aws_nodes_get_least_privilege_profiles_and_no_ray_made_group():
    """Without IamInstanceProfile Ray gives the head EC2FullAccess + S3FullAccess and the workers
    nothing; without SecurityGroupIds on every node type Ray creates a group with SSH from
    0.0.0.0/0 (ray/autoscaler/_private/aws/config.py, _create_default_ssh_inbound_rules)."""
    config = prepare_config(load(ROOT / "cluster.yaml"))
    head = config["head_node_type"]
    assert "security_group" not in config["provider"]
    for name, node_type in config["available_node_types"].items():
        nc = node_type["node_config"]
        want = "raviso-head" if name == head else "raviso-worker"
        assert nc.get("IamInstanceProfile") == {"Name": want}, name
        # unrendered, the id is a placeholder `ray up` rejects: it never falls back to a
        # Ray-made group
        assert nc.get("SecurityGroupIds") == ["RAVISO_SECURITY_GROUP_ID"], name
