"""Cluster commands: submit (a Ray Job), aws-setup."""

import typer

from raviso.cluster.config import AwsSetupConfig, SubmitConfig

from .options import configured


@configured(cfg=SubmitConfig)
def submit_cmd(ctx: typer.Context, cfg: SubmitConfig = None):
    """Run `raviso COMMAND ARGS...` on a Ray cluster as a Ray Job, e.g.
    raviso submit -- pretrain STORE --out RUN, or raviso submit -- cv STORE --out CV."""
    from raviso.cluster.submit import submit as submit_job

    outcome = submit_job(list(ctx.args), cfg)
    raise typer.Exit(outcome.exit_code)


SETTINGS = {"submit": {"context_settings": {"allow_extra_args": True, "ignore_unknown_options": True},
                   "options_metavar": "[OPTIONS] -- COMMAND [ARGS]..."}}


@configured(cfg=AwsSetupConfig)
def aws_setup_cmd(cfg: AwsSetupConfig = None):
    """Write a script that creates the AWS security group (SSH from --ssh-cidr only) and the
    least-privilege IAM profiles, then renders cluster.yaml as cluster.mine.yaml."""
    from raviso.cluster.aws import write_setup_script

    print(write_setup_script(cfg))


COMMANDS = {"submit": submit_cmd, "aws-setup": aws_setup_cmd}
