"""The three recipes of docs/architecture.md ("Where new things go") hold for the code as it is:
each test makes exactly the edit its recipe prescribes, to an in-memory copy of the module's source
(the file on disk is untouched), and follows the new thing to the command line.

A recipe's anchor (the line the edit goes after) missing from the source fails the test: the code
moved, so the recipe on that page must move with it.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

import numpy as np
import pytest
from cvdata import write_tiny_store
from test_bad_input import assert_one_line_error, run_cli


def edited(monkeypatch, name: str, *edits: tuple[str | None, str]):
    """Module `name` re-made from its source with each (anchor, text) edit applied: `text` put
    right before `anchor` (None: at the end), installed in sys.modules and on its package for
    this test only. No edits: the module re-run as it is, binding the edited modules it imports."""
    path = importlib.import_module(name).__file__
    source = open(path).read()
    for anchor, text in edits:
        if anchor is None:
            source += text
            continue
        assert source.count(anchor) == 1, f"recipe anchor {anchor!r} is not once in {path}"
        source = source.replace(anchor, text + anchor)
    new = importlib.util.module_from_spec(importlib.util.spec_from_file_location(name, path))
    monkeypatch.setitem(sys.modules, name, new)     # dataclasses look their module up there
    exec(compile(source, path, "exec"), new.__dict__)
    parent, _, child = name.rpartition(".")
    if parent:
        monkeypatch.setattr(sys.modules[parent], child, new)
    return new


@pytest.fixture(autouse=True)
def forget_modules_imported_meanwhile():
    """A module first imported while an edited copy was installed bound the copy's names: it is
    dropped afterwards, so later tests import it afresh from the real modules."""
    before = set(sys.modules)
    yield
    for name in sorted(set(sys.modules) - before):
        if name == "cli" or name.startswith("raviso."):
            module = sys.modules.pop(name)
            parent, _, child = name.rpartition(".")
            if getattr(sys.modules.get(parent), child, None) is module:
                delattr(sys.modules[parent], child)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path, _ = write_tiny_store(tmp_path_factory.mktemp("recipes") / "store")
    return path


TOY_FACTORY = '''
def toy_ffnn(**opts) -> FFNNRegressor:
    return FFNNRegressor("toy_ffnn", "genes", ffnn_options("toy_ffnn", opts, hidden=(4,)))


'''
TOY_SPEC = '''    VariantSpec("toy_ffnn", toy_ffnn, "model", "four units on the raw genes", GENES,
                forwards=(FFNNOptions,), drop=_NO_PCA, isoform_bytes=FFNN_ISOFORM_BYTES,
                saves=FFNNRegressor),
'''


def test_a_new_variant_is_one_record_in_the_registry(monkeypatch, store, tmp_path, capsys,
                                                      one_torch_thread):
    """Recipe: a factory and one VariantSpec in SPECS; cv, fit and predict then know it by name."""
    variants = edited(monkeypatch, "raviso.models.variants",
                      ("\nSPECS: tuple[VariantSpec, ...] = (", TOY_FACTORY),
                      ("\n)\nREGISTRY: dict[str, VariantSpec]", "\n" + TOY_SPEC.rstrip("\n")))

    line = next(s for s in variants.describe().splitlines() if s.startswith("toy_ffnn "))
    for opt in ("hidden", "lr", "epochs", "seed"):           # its own and FFNNRegressor's
        assert opt in line.split("options: ")[1].split(", ")
    assert "n_components" not in line                       # dropped
    # raviso cv reads it by name: its options are checked before any Ray starts
    assert_one_line_error(run_cli(capsys, monkeypatch, "cv", store, "--out", tmp_path / "cv",
                                  "--variants", "toy_ffnn[nope=1]"), "toy_ffnn", "hidden")
    # one cv trial of it (run_trial is the unit of work of every Tune trial)
    from raviso.data.folds import make_folds
    from raviso.data.labelled import Labelled
    from raviso.data.reader import Store
    from raviso.evaluate.cv import run_trial

    data = Labelled.from_store(Store(store))
    folds = make_folds(data.tissue, data.donor, k=3, seed=0)
    out = run_trial(data, folds.fold, 0, "toy_ffnn[epochs=2]", {"seed": 0})
    assert np.isfinite(out["mse"]) and out["n_test"] == int((folds.fold == 0).sum())
    # fit -> MODEL -> predict, from the command line (--cv-folds 0: no Ray, whose workers would
    # import the registry from disk)
    model, pred = tmp_path / "model", tmp_path / "pred.tsv"
    code, out_, err = run_cli(capsys, monkeypatch, "fit", store, "--out", model, "--variant",
                              "toy_ffnn", "--epochs", "2", "--cv-folds", "0")
    assert code == 0, err
    code, out_, err = run_cli(capsys, monkeypatch, "predict", model, store, "--out", pred)
    assert code == 0, err
    rows = pred.read_text().splitlines()
    assert len(rows) == 1 + data.n and len(rows[1].split("\t")) == 1 + data.isoforms.shape[1]


def test_a_new_option_is_one_config_field(monkeypatch, store, tmp_path, capsys):
    """Recipe: ONE `option()` field of the stage's config; the command's flag, its default, help
    and check follow, and the stage receives it in its config."""
    edited(monkeypatch, "raviso.serve.config", ("    variant: str | None = option(", 
           '    toy_level: int = option(2, "How toy the fit is.", check=lambda v: v >= 1,\n'
           '                            problem="must be >= 1 (got {value})")\n'))
    edited(monkeypatch, "raviso.commands.serve")        # the command module and the app
    edited(monkeypatch, "cli")                          # bind the edited config

    code, out, _ = run_cli(capsys, monkeypatch, "fit", "--help")
    assert code == 0 and "--toy-level" in out and "How toy the fit is." in out
    assert_one_line_error(run_cli(capsys, monkeypatch, "fit", store, "--out", tmp_path / "m",
                                  "--toy-level", "0"), "--toy-level must be >= 1 (got 0)")
    import raviso.serve.fit as fit_mod

    seen, real = [], fit_mod.fit_store
    monkeypatch.setattr(fit_mod, "fit_store", lambda store, cfg, **kw:
                        seen.append(cfg.toy_level) or real(store, cfg, **kw))
    code, _, err = run_cli(capsys, monkeypatch, "fit", store, "--out", tmp_path / "m",
                           "--variant", "gene_ffnn", "--epochs", "1", "--cv-folds", "0",
                           "--toy-level", "5")
    assert code == 0, err
    assert seen == [5] and (tmp_path / "m" / "model.json").is_file()


HELLO = '''

def hello_cmd(name: str = typer.Argument(..., help="Who.")):
    """Say hello."""
    print(f"hello {name}")


COMMANDS["hello"] = hello_cmd
'''


def test_a_new_command_is_a_function_and_two_names(monkeypatch, capsys):
    """Recipe: a function in its group's module and its COMMANDS entry there, and its
    (name, group) in cli.py's COMMANDS list."""
    edited(monkeypatch, "raviso.commands.evaluate", (None, HELLO))
    edited(monkeypatch, "cli", ("]\napp.add_typer(bench.app", ', ("hello", evaluate)'))

    code, out, _ = run_cli(capsys, monkeypatch, "--help")
    assert code == 0 and "hello" in out and "Say hello." in out
    code, out, _ = run_cli(capsys, monkeypatch, "hello", "world")
    assert code == 0 and out.strip() == "hello world"
    code, _, err = run_cli(capsys, monkeypatch, "hello")
    assert code == 2 and err.strip().startswith("raviso: error: hello:")
