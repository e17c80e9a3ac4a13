"""The CLI's options are the config fields: same defaults, same help; a bad value names the field
in Python and the flag on the command line."""

from __future__ import annotations

import dataclasses

import pytest
import typer
from test_bad_input import run_cli

import cli
from raviso.commands.options import cli_fields
from raviso.core.config import OptionError, flag_of
from raviso.evaluate.config import CvConfig, ReportConfig, TuneConfig
from raviso.io.config import ConvertConfig, ExportConfig, ImportConfig
from raviso.models.vae.config import VAEConfig
from raviso.serve.config import FitConfig, PredictConfig
from raviso.cluster.config import AwsSetupConfig, SubmitConfig
from raviso.demo import DemoConfig
from raviso.train.config import EncodeConfig, PretrainConfig, TrainConfig

CONFIGS = {"cv": [CvConfig], "tune": [TuneConfig], "convert": [ConvertConfig],
           "import": [ImportConfig], "fit": [FitConfig], "predict": [PredictConfig],
           "pretrain": [VAEConfig, TrainConfig, PretrainConfig], "encode": [EncodeConfig],
           "demo": [DemoConfig], "export": [ExportConfig], "report": [ReportConfig], "aws-setup": [AwsSetupConfig], "submit": [SubmitConfig]}


def _cli_default(f: dataclasses.Field):
    """The field's default as its generated flag spells it."""
    value = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    if isinstance(value, tuple) and value and isinstance(value[0], int):
        return ",".join(map(str, value))          # int tuples are comma lists on the CLI
    if isinstance(value, tuple):
        return None                               # repeatable options: none given
    return value


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_flag_default_is_its_config_fields(name):
    command = typer.main.get_command(cli.app).commands[name]
    params = {p.name: p for p in command.params}
    for config in CONFIGS[name]:
        for f in cli_fields(config):
            p = params[f.name]
            assert flag_of(f) in p.opts, (name, f.name, p.opts)
            if p.required:
                continue
            default = _cli_default(f)
            assert p.default == default or (p.default is not None and p.type(p.default) ==
                                            p.type(default)), (name, f.name, p.default, default)
            assert p.help.startswith(f.metadata["help"].split("{")[0]), (name, f.name)


def test_a_bad_value_names_the_field_in_python_and_the_flag_on_the_cli(tmp_path, capsys,
                                                                      monkeypatch):
    with pytest.raises(OptionError) as e:
        TrainConfig(batch_size=0)
    assert e.value.option == "batch_size" and str(e.value) == "batch_size must be >= 1"
    with pytest.raises(OptionError, match="tuned_config|group_by") as e:
        CvConfig(group_by="tissue")
    assert e.value.option == "group_by"
    code, out, err = run_cli(capsys, monkeypatch, "pretrain", str(tmp_path), "--out",
                             str(tmp_path / "run"), "--batch-size", "0")
    assert code == 1 and err.strip() == "raviso: error: --batch-size must be >= 1"
    code, out, err = run_cli(capsys, monkeypatch, "pretrain", str(tmp_path), "--out",
                             str(tmp_path / "run"), "--no-gtex-eval", "--hidden", "8,x")
    assert code == 1 and "--hidden takes comma-separated integers" in err


def test_python_keywords_and_a_config_are_the_same_call():
    assert FitConfig.build(None, seed=3) == FitConfig(seed=3)
    assert CvConfig.build(CvConfig(folds=3), seed=2) == CvConfig(folds=3, seed=2)


def test_resume_overrides_only_the_options_given_on_the_command_line(tmp_path, capsys,
                                                                     monkeypatch):
    import raviso.train.pretrain as pretrain_mod

    seen = {}
    monkeypatch.setattr(pretrain_mod, "pretrain", lambda store, out, model, train, run, given:
                        seen.update(model=model, train=train, run=run, given=given) or out)
    code, out, err = run_cli(capsys, monkeypatch, "pretrain", str(tmp_path), "--out",
                             str(tmp_path / "run"), "--epochs", "10", "--resume")
    assert code == 0, err
    assert seen["given"] >= {"epochs", "resume"} and "batch_size" not in seen["given"]
    assert seen["train"] == TrainConfig(epochs=10) and seen["run"].resume


def test_cv_and_tune_check_fold_scheme_alike_and_share_the_run_options():
    for config, given in ((CvConfig, {}), (TuneConfig, {"variant": "mean"})):
        with pytest.raises(OptionError) as e:
            config(**given, fold_scheme="loo")
        assert e.value.option == "fold_scheme" and "kfold, auto, logo or tissue" in str(e.value)
    assert TuneConfig(variant="mean", fold_scheme="tissue").fold_scheme == "tissue"  # nested cv
    fields = {c: {f.name: f for f in dataclasses.fields(c)} for c in (CvConfig, TuneConfig)}
    for name in ("pretrained", "pretrained_ae"):
        assert fields[CvConfig][name].metadata["help"] == fields[TuneConfig][name].metadata["help"]
