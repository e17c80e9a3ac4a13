"""`AwsSetupConfig` and `SubmitConfig`: the options of `raviso aws-setup` and `raviso submit`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..core.config import StageConfig, address_option, option, overwrite_option


@dataclass(frozen=True)
class AwsSetupConfig(StageConfig):
    ssh_cidr: str = option("", "The only network SSH may come from, e.g. 203.0.113.7/32 "
                           "(0.0.0.0/0 is refused).", required=True)
    bucket: str = option("", "The S3 bucket of stores and checkpoints: the only one the nodes' "
                         "profiles may use.", required=True)
    out: Path = option(Path("aws-setup.sh"), "The bash script to write.")
    template: Path = option(Path("cluster.yaml"), "The cluster config to render (region and "
                            "name from it).")
    overwrite: bool = overwrite_option("Replace an existing script.")


@dataclass(frozen=True)
class SubmitConfig(StageConfig):
    address: str | None = address_option("Ray job server (dashboard) address; default "
                                         "$RAY_API_SERVER_ADDRESS, else http://127.0.0.1:8265 "
                                         "(where `ray dashboard` forwards).")
    wait: bool = option(True, "Stream the job's logs and exit with its status, or return once "
                        "it is submitted.", flag="--wait/--no-wait")
    with_deps: bool = option(False, "Also pip-install raviso's dependencies (except ray and "
                             "torch) in the job's env.")
