"""Cluster commands: submit (a Ray Job), aws-setup."""

from pathlib import Path
from typing import Optional

import typer


def submit_cmd(
    ctx: typer.Context,
    address: Optional[str] = typer.Option(
        None, "--address", help="Ray job server (dashboard) address; default "
        "$RAY_API_SERVER_ADDRESS, else http://127.0.0.1:8265 (where `ray dashboard` forwards)."),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Stream the job's logs and exit "
                              "with its status, or return once it is submitted."),
    with_deps: bool = typer.Option(False, "--with-deps", help="Also pip-install raviso's "
                                   "dependencies (except ray and torch) in the job's env."),
):
    """Run `raviso COMMAND ARGS...` on a Ray cluster as a Ray Job, e.g.
    raviso submit -- pretrain STORE --out RUN, or raviso submit -- cv STORE --out CV."""
    from raviso.cluster.submit import submit as submit_job

    outcome = submit_job(list(ctx.args), address=address, wait=wait, with_deps=with_deps)
    raise typer.Exit(outcome.exit_code)


SETTINGS = {"submit": {"context_settings": {"allow_extra_args": True, "ignore_unknown_options": True},
                   "options_metavar": "[OPTIONS] -- COMMAND [ARGS]..."}}


def aws_setup_cmd(
    ssh_cidr: str = typer.Option(..., "--ssh-cidr", help="The only network SSH may come from, "
                                 "e.g. 203.0.113.7/32 (0.0.0.0/0 is refused)."),
    bucket: str = typer.Option(..., "--bucket", help="The S3 bucket of stores and checkpoints: "
                               "the only one the nodes' profiles may use."),
    out: Path = typer.Option(Path("aws-setup.sh"), "--out", help="The bash script to write."),
    template: Path = typer.Option(Path("cluster.yaml"), "--template",
                                  help="The cluster config to render (region and name from it)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing script."),
):
    """Write a script that creates the AWS security group (SSH from --ssh-cidr only) and the
    least-privilege IAM profiles, then renders cluster.yaml as cluster.mine.yaml."""
    from raviso.cluster.aws import write_setup_script

    print(write_setup_script(template, ssh_cidr, bucket, out, overwrite=overwrite))


COMMANDS = {"submit": submit_cmd, "aws-setup": aws_setup_cmd}
