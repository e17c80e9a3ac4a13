"""`raviso aws-setup` renders a cluster config where Ray creates no security group
(its own would open SSH to 0.0.0.0/0), SSH comes only from the user's CIDR, and head and workers
get least-privilege instance profiles. The script runs here against a recording stand-in for the
`aws` CLI; the rendered file then goes through Ray's own schema and launcher checks.
"""

from __future__ import annotations

import copy
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

import ray.autoscaler
from ray.autoscaler._private.util import prepare_config, validate_config

from raviso.cluster import aws
from raviso.core.errors import RavisoError

ROOT = Path(__file__).resolve().parents[2]
RAVISO = str(Path(sys.executable).parent / "raviso")
CIDR = "203.0.113.0/24"
SG = "sg-0abc1234def567890"

FAKE_AWS = r'''#!/usr/bin/env python3
"""Records each call; answers the few queries the script reads."""
import json, os, sys
args = sys.argv[1:]
with open(os.environ["AWS_LOG"], "a") as f:
    f.write(json.dumps(args) + "\n")
cmd = " ".join(args[:2])
if cmd == "ec2 describe-vpcs":
    print("vpc-0123")
elif cmd == "ec2 describe-security-groups":
    if "--group-ids" in args:
        print(os.environ.get("AWS_OPEN_RULES", ""))
    else:
        print(os.environ.get("AWS_EXISTING_GROUP", "None"))
elif cmd == "ec2 create-security-group":
    print(os.environ["AWS_NEW_GROUP"])
elif cmd in ("iam get-role", "iam get-instance-profile"):
    sys.exit(254)                              # absent: the script creates it
'''


def run_setup(tmp_path, cidr=CIDR, **env_extra):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "aws"
    fake.write_text(FAKE_AWS.replace("#!/usr/bin/env python3", f"#!{sys.executable}"))
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    script = tmp_path / "aws-setup.sh"
    r = subprocess.run([RAVISO, "aws-setup", "--ssh-cidr", cidr, "--bucket", "my-raviso-data",
                        "--out", str(script)], capture_output=True, text=True, cwd=ROOT,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    log = tmp_path / "aws.log"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "AWS_LOG": str(log),
           "AWS_NEW_GROUP": SG, **env_extra}
    r = subprocess.run(["bash", str(script)], capture_output=True, text=True, cwd=tmp_path,
                       env=env, timeout=120)
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return r, calls


def _policy(calls, role):
    (call,) = [c for c in calls if c[:2] == ["iam", "put-role-policy"] and role in c]
    return json.loads(call[call.index("--policy-document") + 1])


def test_rendered_config_passes_ray_and_lets_ray_create_no_group(tmp_path):
    r, calls = run_setup(tmp_path)
    assert r.returncode == 0, r.stderr
    config = yaml.safe_load((tmp_path / "cluster.mine.yaml").read_text())
    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    jsonschema.validate(config, schema)
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    head = prepared["head_node_type"]
    for name, node_type in prepared["available_node_types"].items():
        nc = node_type["node_config"]
        # ray/autoscaler/_private/aws/config.py::_configure_security_group creates a group (SSH
        # from 0.0.0.0/0) for every node type WITHOUT SecurityGroupIds: there must be none
        assert nc["SecurityGroupIds"] == [SG], name
        assert nc["IamInstanceProfile"] == {"Name": aws.HEAD_ROLE if name == head
                                            else aws.WORKER_ROLE}
    assert "0.0.0.0/0" not in json.dumps(config)          # comments aside


def test_ssh_only_from_the_users_cidr_and_only_between_members(tmp_path):
    r, calls = run_setup(tmp_path)
    assert r.returncode == 0, r.stderr
    ingress = [c for c in calls if c[:2] == ["ec2", "authorize-security-group-ingress"]]
    assert len(ingress) == 2
    assert ingress[0][ingress[0].index("--source-group") + 1] == SG
    (perm,) = json.loads(ingress[1][ingress[1].index("--ip-permissions") + 1])
    assert (perm["FromPort"], perm["ToPort"], perm["IpProtocol"]) == (22, 22, "tcp")
    assert [x["CidrIp"] for x in perm["IpRanges"]] == [CIDR]
    assert not any("0.0.0.0/0" in " ".join(c) and "authorize" in c[1] for c in calls)


def test_profiles_are_least_privilege(tmp_path):
    r, calls = run_setup(tmp_path)
    worker, head = _policy(calls, aws.WORKER_ROLE), _policy(calls, aws.HEAD_ROLE)

    def actions(policy):
        out = []
        for s in policy["Statement"]:
            a = s["Action"]
            out += [a] if isinstance(a, str) else a
        return out

    assert all(a.startswith("s3:") for a in actions(worker))
    assert all(s["Resource"].startswith("arn:aws:s3:::my-raviso-data") for s in worker["Statement"])
    for a in actions(head) + actions(worker):
        assert "*" not in a, a                         # no ec2:*, s3:*, iam:*
    (pass_role,) = [s for s in head["Statement"] if s["Action"] == "iam:PassRole"]
    assert pass_role["Resource"].endswith(f":role/{aws.WORKER_ROLE}")
    (terminate,) = [s for s in head["Statement"] if "ec2:TerminateInstances" in s["Action"]]
    assert terminate["Condition"]["StringEquals"] == {"ec2:ResourceTag/ray-cluster-name": "raviso"}
    assert not [s for s in head["Statement"] if "AmazonEC2FullAccess" in json.dumps(s)]


def test_an_existing_group_open_to_the_internet_is_refused(tmp_path):
    r, calls = run_setup(tmp_path, AWS_EXISTING_GROUP=SG, AWS_OPEN_RULES="22 tcp 22")
    assert r.returncode != 0
    assert "open to the internet" in r.stderr
    assert not (tmp_path / "cluster.mine.yaml").exists()
    assert not [c for c in calls if c[0] == "iam"]


@pytest.mark.parametrize("cidr, message", [("0.0.0.0/0", "whole internet"),
                                           ("10.0.0.300/8", "not a network"),
                                           ("my laptop", "not a network")])
def test_bad_cidr_is_a_one_line_error(tmp_path, cidr, message):
    r = subprocess.run([RAVISO, "aws-setup", "--ssh-cidr", cidr, "--bucket", "b-1x",
                        "--out", str(tmp_path / "s.sh")], capture_output=True, text=True,
                       cwd=ROOT, timeout=120)
    assert r.returncode != 0 and message in r.stderr
    assert r.stderr.strip().count("\n") == 0 and r.stderr.startswith("raviso: error:")
    assert not (tmp_path / "s.sh").exists()
    with pytest.raises(RavisoError, match=message):
        aws.ssh_cidr(cidr)
