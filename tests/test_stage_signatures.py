"""A stage function takes its config (plus runtime handles: paths, a Ray address, a progress
callback), never loose copies of its config's fields: a field's default is then written once, in
the field, and a new option reaches the stage without touching its signature. From Python the
same options come as keywords (``**options``), checked by the config like the CLI's (a bad one
named by its field, as `OptionError` does in Python)."""

from __future__ import annotations

import dataclasses
import importlib
import inspect

import pytest

# (module, function, the config it takes)
STAGES = [
    ("raviso.io.convert", "convert", "raviso.io.config.ConvertConfig"),
    ("raviso.io.importer", "import_samples", "raviso.io.config.ImportConfig"),
    ("raviso.io.importer", "import_matrix", "raviso.io.config.ImportConfig"),
    ("raviso.io.export", "export_store", "raviso.io.config.ExportConfig"),
    ("raviso.synth.generate", "generate", "raviso.synth.config.SynthConfig"),
    ("raviso.train.encode", "encode", "raviso.train.config.EncodeConfig"),
    ("raviso.evaluate.cv", "run_cv", "raviso.evaluate.config.CvConfig"),
    ("raviso.evaluate.tune.command", "tune_store", "raviso.evaluate.config.TuneConfig"),
    ("raviso.evaluate.tune.search", "inner_splits", "raviso.evaluate.config.TuneConfig"),
    ("raviso.evaluate.report.render", "write_report", "raviso.evaluate.config.ReportConfig"),
    ("raviso.evaluate.study.run", "run_study", "raviso.evaluate.study.run.StudyConfig"),
    ("raviso.serve.fit", "fit_store", "raviso.serve.config.FitConfig"),
    ("raviso.serve.fit_cv", "fit_by_cv", "raviso.serve.config.FitConfig"),
    ("raviso.serve.predict", "predict_file", "raviso.serve.config.PredictConfig"),
    ("raviso.cluster.submit", "submit", "raviso.cluster.config.SubmitConfig"),
    ("raviso.cluster.aws", "write_setup_script", "raviso.cluster.config.AwsSetupConfig"),
    ("raviso.demo", "run_demo", "raviso.demo.DemoConfig"),
]


def _obj(dotted: str):
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def signature_problems(fn, config) -> list[str]:
    """What is wrong with `fn` as the stage of `config`: no parameter taking the config, or a
    parameter named after one of its fields (a loose copy of the option)."""
    params = inspect.signature(fn).parameters
    fields = {f.name for f in dataclasses.fields(config)}
    out = []
    takes = [p for p in params.values() if config.__name__ in str(p.annotation)]
    if not takes:
        out.append(f"{fn.__name__} has no parameter of type {config.__name__}")
    out += [f"{fn.__name__}({p}) copies {config.__name__}.{p}" for p in params if p in fields]
    return out


@pytest.mark.parametrize("module,function,config", STAGES,
                         ids=[f"{m.rpartition('.')[2]}.{f}" for m, f, _ in STAGES])
def test_a_stage_function_takes_its_config_not_copies_of_its_fields(module, function, config):
    fn = getattr(importlib.import_module(module), function)
    assert signature_problems(fn, _obj(config)) == []


def test_the_signature_check_catches_a_loose_copy_and_a_missing_config():
    from raviso.serve.config import FitConfig

    def fit(store, cfg: FitConfig | None = None, *, seed=0, progress=print):
        pass

    def predict(store, variant, epochs=None):
        pass

    assert signature_problems(fit, FitConfig) == ["fit(seed) copies FitConfig.seed"]
    assert signature_problems(predict, FitConfig) == [
        "predict has no parameter of type FitConfig", "predict(variant) copies FitConfig.variant",
        "predict(epochs) copies FitConfig.epochs"]


def test_python_callers_give_options_as_keywords_checked_like_the_cli(tmp_path):
    """A stage called from Python with its options as keywords builds the same config, and a bad
    value is refused before anything is written, naming the field."""
    from raviso.core.config import OptionError
    from raviso.serve.predict import predict_file
    from raviso.synth.generate import generate, plan

    with pytest.raises(OptionError, match=r"^interval must be a level in \(0, 1\)"):
        predict_file(tmp_path / "model", tmp_path / "in.tsv", tmp_path / "p.h5ad", interval=1.5)
    with pytest.raises(OptionError, match="^unknown_tissue must be tissue-free or error"):
        predict_file(tmp_path / "model", tmp_path / "in.tsv", tmp_path / "p.h5ad",
                     unknown_tissue="guess")
    with pytest.raises(TypeError, match="colour"):
        generate(tmp_path / "s", preset="tiny", colour="red")
    assert list(tmp_path.iterdir()) == []
    assert len(plan("tiny", heldout=False)) == len(plan("tiny")) - 1
