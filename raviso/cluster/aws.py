"""`raviso aws-setup`: the AWS side of cluster.yaml, least privilege, as a script the user runs:
a security group with SSH from one CIDR, head and worker IAM profiles, then cluster.mine.yaml.
Pure (text in, text out), so it is tested offline. Why a script: docs/cluster.md."""

from __future__ import annotations

import ipaddress
import json
import re
import shlex

from ..core.errors import RavisoError
from .config import AwsSetupConfig

HEAD_ROLE = "raviso-head"
WORKER_ROLE = "raviso-worker"
GROUP_NAME = "raviso-cluster"
SG_PLACEHOLDER = "RAVISO_SECURITY_GROUP_ID"
RENDERED = "cluster.mine.yaml"
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")


def ssh_cidr(text: str) -> str:
    """The user's SSH source network, normalised; refuses 'anywhere' and malformed input."""
    try:
        net = ipaddress.ip_network(str(text).strip(), strict=False)
    except ValueError:
        raise RavisoError(f"--ssh-cidr {text!r} is not a network (e.g. 203.0.113.0/24 or "
                          "198.51.100.7/32)") from None
    if net.prefixlen == 0:
        raise RavisoError(f"--ssh-cidr {text} opens SSH to the whole internet; give your own "
                          "network (e.g. your address/32)")
    if net.version != 4:
        raise RavisoError(f"--ssh-cidr {text}: only IPv4 networks are supported")
    return str(net)


def bucket_name(text: str) -> str:
    name = str(text).strip().removeprefix("s3://").strip("/")
    if not _BUCKET.match(name) or ".." in name:
        raise RavisoError(f"--bucket {text!r} is not an S3 bucket name")
    return name


def _bucket_statements(bucket: str) -> list[dict]:
    return [
        {"Sid": "ListDataBucket", "Effect": "Allow",
         "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
         "Resource": f"arn:aws:s3:::{bucket}"},
        {"Sid": "ReadWriteDataBucket", "Effect": "Allow",
         "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject",
                    "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
         "Resource": f"arn:aws:s3:::{bucket}/*"},
    ]


def worker_policy(bucket: str) -> dict:
    """Workers read stores and write checkpoints in the data bucket; nothing else."""
    return {"Version": "2012-10-17", "Statement": _bucket_statements(bucket)}


def head_policy(bucket: str, cluster_name: str) -> dict:
    """What Ray's autoscaler on the head calls (node_provider.py: describe, create_instances with
    tags, create_tags, terminate/stop/start), limited where EC2 allows it to this cluster's
    instances (tag ``ray-cluster-name``), plus passing ONLY the worker role, plus the bucket."""
    own = {"StringEquals": {"ec2:ResourceTag/ray-cluster-name": cluster_name}}
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "Describe", "Effect": "Allow", "Resource": "*",
         "Action": ["ec2:DescribeInstances", "ec2:DescribeInstanceTypes", "ec2:DescribeImages",
                    "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups", "ec2:DescribeKeyPairs",
                    "ec2:DescribeAvailabilityZones"]},
        {"Sid": "LaunchWorkers", "Effect": "Allow", "Resource": "*",
         "Action": ["ec2:RunInstances", "ec2:CreateTags"]},
        {"Sid": "ManageOwnInstances", "Effect": "Allow", "Resource": "*", "Condition": own,
         "Action": ["ec2:TerminateInstances", "ec2:StopInstances", "ec2:StartInstances",
                    "ec2:DeleteTags"]},
        {"Sid": "PassWorkerRoleOnly", "Effect": "Allow", "Action": "iam:PassRole",
         "Resource": f"arn:aws:iam::*:role/{WORKER_ROLE}"},
        {"Sid": "SpotServiceRole", "Effect": "Allow", "Action": "iam:CreateServiceLinkedRole",
         "Resource": "*", "Condition": {"StringEquals": {"iam:AWSServiceName":
                                                           "spot.amazonaws.com"}}},
        *_bucket_statements(bucket),
    ]}


EC2_TRUST = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
     "Action": "sts:AssumeRole"}]}


def ssh_permissions(cidr: str) -> list[dict]:
    """The group's one rule from outside: SSH (22/tcp) from `cidr`."""
    return [{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
             "IpRanges": [{"CidrIp": ssh_cidr(cidr), "Description": "raviso: SSH from your network"}]}]


def render_config(template_text: str, security_group_id: str, cidr: str) -> str:
    """cluster.yaml with the group's id in every node type; a header says what was rendered."""
    if not re.fullmatch(r"sg-[0-9a-f]{8,17}", security_group_id):
        raise RavisoError(f"{security_group_id!r} is not a security group id (sg-...)")
    if SG_PLACEHOLDER not in template_text:
        raise RavisoError(f"the template has no {SG_PLACEHOLDER} to fill in")
    header = (f"# Rendered by `raviso aws-setup` from cluster.yaml: security group "
              f"{security_group_id} (SSH from {cidr} only), profiles {HEAD_ROLE} / {WORKER_ROLE}.\n")
    return header + template_text.replace(SG_PLACEHOLDER, security_group_id)


def setup_script(template_text: str, cidr: str, bucket: str, out: str = RENDERED) -> str:
    """A bash script: the security group, both roles and instance profiles, then `out`, for the
    region and cluster name of `template_text` (cluster.yaml).

    Idempotent: an existing group is reused only when it has no rule open to 0.0.0.0/0 or ::/0;
    existing roles get their policy replaced (put-role-policy)."""
    import yaml

    cidr, bucket = ssh_cidr(cidr), bucket_name(bucket)
    if SG_PLACEHOLDER not in template_text:
        raise RavisoError(f"the template has no {SG_PLACEHOLDER} to fill in")
    try:
        template = yaml.safe_load(template_text)
        region, cluster_name = template["provider"]["region"], template["cluster_name"]
    except (yaml.YAMLError, KeyError, TypeError) as e:
        raise RavisoError(f"not a Ray cluster config ({type(e).__name__}: {e})") from None
    q = shlex.quote
    perms = json.dumps(ssh_permissions(cidr))
    lines = [
        "#!/usr/bin/env bash",
        f"# Written by `raviso aws-setup --ssh-cidr {cidr} --bucket {bucket}` (region {region}).",
        "# Creates (or checks) the raviso security group and IAM profiles, then writes "
        f"{out}.",
        "set -euo pipefail",
        f"export AWS_DEFAULT_REGION={q(region)}",
        "VPC=$(aws ec2 describe-vpcs --filters Name=is-default,Values=true "
        "--query 'Vpcs[0].VpcId' --output text)",
        f"SG=$(aws ec2 describe-security-groups --filters Name=vpc-id,Values=\"$VPC\" "
        f"Name=group-name,Values={GROUP_NAME} --query 'SecurityGroups[0].GroupId' --output text)",
        'if [ "$SG" = "None" ] || [ -z "$SG" ]; then',
        f"  SG=$(aws ec2 create-security-group --group-name {GROUP_NAME} --vpc-id \"$VPC\" "
        "--description 'raviso Ray cluster' --query GroupId --output text)",
        '  aws ec2 authorize-security-group-ingress --group-id "$SG" --protocol -1 '
        '--source-group "$SG"',
        f"  aws ec2 authorize-security-group-ingress --group-id \"$SG\" --ip-permissions {q(perms)}",
        "fi",
        "OPEN=$(aws ec2 describe-security-groups --group-ids \"$SG\" --query "
        "\"SecurityGroups[0].IpPermissions[?IpRanges[?CidrIp=='0.0.0.0/0'] || "
        "Ipv6Ranges[?CidrIpv6=='::/0']]\" --output text)",
        'if [ -n "$OPEN" ] && [ "$OPEN" != "None" ]; then',
        f"  echo \"raviso: error: security group $SG ({GROUP_NAME}) has a rule open to the "
        "internet; remove it first\" >&2; exit 1",
        "fi",
    ]
    for role, policy in ((WORKER_ROLE, worker_policy(bucket)),
                         (HEAD_ROLE, head_policy(bucket, cluster_name))):
        lines += _role_lines(role, policy)
    rendered = render_config(template_text, "sg-00000000", cidr).replace("sg-00000000", "@SG@")
    lines += [
        f"sed \"s/@SG@/$SG/g\" > {q(out)}.tmp <<'RAVISO_CLUSTER_YAML'",
        rendered.rstrip("\n"),
        "RAVISO_CLUSTER_YAML",
        f"mv {q(out)}.tmp {q(out)}",
        f"echo \"raviso: security group $SG (SSH from {cidr}), profiles {HEAD_ROLE} and "
        f"{WORKER_ROLE}; now: ray up {out}\"",
    ]
    return "\n".join(lines) + "\n"


def _role_lines(role: str, policy: dict) -> list[str]:
    """Script lines that create (or update) IAM role `role` with `policy` and its profile."""
    q = shlex.quote
    return [
        f"aws iam get-role --role-name {role} >/dev/null 2>&1 || aws iam create-role "
        f"--role-name {role} --assume-role-policy-document {q(json.dumps(EC2_TRUST))} >/dev/null",
        f"aws iam put-role-policy --role-name {role} --policy-name {role} --policy-document "
        f"{q(json.dumps(policy))}",
        f"aws iam get-instance-profile --instance-profile-name {role} >/dev/null 2>&1 || {{ "
        f"aws iam create-instance-profile --instance-profile-name {role} >/dev/null && "
        f"aws iam add-role-to-instance-profile --instance-profile-name {role} "
        f"--role-name {role}; }}",
    ]


def write_setup_script(cfg: AwsSetupConfig):
    """`raviso aws-setup`: the script for `cfg.template` (cluster.yaml), written atomically to
    `cfg.out`."""
    import os
    from pathlib import Path

    from ..core.atomic import atomic_file

    template, out = Path(cfg.template), cfg.out
    try:
        text = template.read_text()
    except OSError as e:
        raise RavisoError(f"cannot read the cluster config ({e.strerror}); run from the "
                          "repository root or pass --template", template) from None
    script = setup_script(text, cfg.ssh_cidr, cfg.bucket)
    with atomic_file(out, overwrite=cfg.overwrite) as tmp:
        tmp.write_text(script)
        os.chmod(tmp, 0o755)
    return Path(out)
