"""Issue 31: every file of every artefact raviso writes (store, RUN, MODEL, CV), deleted, cut to half
and replaced by garbage of the same size, then read by the commands that read it.

Each case must either end in ONE line `raviso: error: ...` that names the file by its path in the
artefact and the fix (re-import, refit, re-run), without a traceback, or, when the command does not
need that file (a plot, a checkpoint, the optional reliability of `predict` without --interval),
produce exactly what the undamaged artefact gives: a damaged file is never silently misread.

The files come from the freshly written artefacts, so a file added later is covered without editing
this test. Commands run in-process (`test_bad_input.run_cli`); one Ray session for the RUN (a real
`raviso pretrain`) and the MODEL's CV (`raviso fit`, which writes MODEL.cv beside it).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from cvdata import write_gene_table, write_tiny_store
from test_bad_input import run_cli

pytestmark = pytest.mark.ray

DAMAGES = ("missing", "half", "garbage")
FIXES = ("re-import", "refit", "re-run", "--resume", "raviso pretrain", "raviso cv", "raviso fit",
         "raviso import", "raviso convert")



def damage(path: Path, how: str) -> None:
    if how == "missing":
        path.unlink()
    elif how == "half":
        data = path.read_bytes()
        path.write_bytes(data[:len(data) // 2])
    else:
        size = max(path.stat().st_size, 16)
        path.write_bytes((b"\x00garbage\xff" * (size // 10 + 1))[:size])


def files_of(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def built(tmp_path_factory, ray_session):
    """store, RUN (pretrained), MODEL (recommended, fitted with a 2-fold CV) and its CV."""
    from raviso.data.store import write_store
    from raviso.models.vae.config import VAEConfig
    from raviso.serve.fit import fit_store
    from raviso.train.config import PretrainConfig, TrainConfig
    from raviso.train.pretrain import pretrain

    root = tmp_path_factory.mktemp("damaged")
    store, d = write_tiny_store(root / "store")
    write_store(root / "compendium", d["genes"], archs4={"X": d["G"], "sample_id": d["sample_id"]})
    pretrain(root / "compendium", root / "run", VAEConfig(hidden=(8,), latent_dim=2),
             TrainConfig(epochs=1, batch_size=16, workers=1, cpus_per_worker=0.5,
                         val_fraction=0.2), PretrainConfig(quiet=True))
    fit_store(store, out=root / "model", cv_folds=2, progress=lambda s: None)
    genes = root / "genes.tsv"
    write_gene_table(genes, d["sample_id"], d["genes"], d["G"])
    return root


# -- what each command produced, compared across damaged and intact artefacts ------------------
def parquet_content(path: Path):
    import pyarrow.parquet as pq

    return pq.read_table(path).replace_schema_metadata(None)


def export_reader(store: Path):
    """`raviso export` of every dataset the intact `store` has."""
    import json

    datasets = sorted(json.loads((store / "manifest.json").read_text())["datasets"])

    def reader(art: Path, out: Path):
        for name in datasets:
            o = out / f"{name}.tsv"
            yield (["export", art, "--to", "tsv", "--dataset", name, "--out", o],
                   lambda o=o: o.read_bytes())
    return reader


def encode_reader(built: Path):
    def reader(art: Path, out: Path):
        yield (["encode", art, built / "store", "--which", "gtex", "--out", out / "latent"],
               lambda: parquet_content(next((out / "latent").rglob("*.parquet"))))
    return reader


def predict_reader(built: Path):
    def reader(art: Path, out: Path):
        for extra in ([], ["--interval", "0.9"]):
            o = out / f"pred{len(extra)}.parquet"
            yield (["predict", art, built / "genes.tsv", "--out", o, *extra],
                   lambda o=o: parquet_content(o))
    return reader


def report_reader(art: Path, out: Path):
    def content():
        return tuple((art / n).read_text().replace(str(art), "CV")
                     for n in ("report.md", "table1.csv"))
    yield ["report", art], content


def same(a, b) -> bool:
    if hasattr(a, "equals"):
        return a.equals(b)
    return a == b


def check_case(art: Path, rel: str, how: str, readers, work: Path, expected: dict, capsys,
               monkeypatch) -> list[str]:
    """Damage `rel` of a copy of `art` `how`, run every reader; the problems found."""
    copy = work / f"{art.name}"
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(art, copy, symlinks=True)
    damage(copy / rel, how)
    problems = []
    for i, (args, result) in enumerate(readers(copy, work / "out")):
        shutil.rmtree(work / "out", ignore_errors=True)
        (work / "out").mkdir()
        code, out, err = run_cli(capsys, monkeypatch, *args)
        lines = [x for x in err.strip().splitlines() if x.strip()]
        errors = [x for x in lines if x.startswith("raviso: error")]
        where = f"{art.name}/{rel} {how}, raviso {args[0]}"
        if "Traceback" in err:
            problems.append(f"{where}: traceback")
        elif code != 0:
            if len(errors) != 1:
                problems.append(f"{where}: not one error line: {lines[-3:]}")
            elif rel not in errors[0] or not any(f in errors[0] for f in FIXES):
                problems.append(f"{where}: does not name {rel} and the fix: {errors[0]}")
        elif not same(result(), expected[i]):
            problems.append(f"{where}: exit 0 but a different result (damage misread)")
    return problems


ARTEFACTS = {
    # name: (path in `built`, its readers)
    "store": ("store", lambda b: export_reader(b / "store")),
    "run": ("run", encode_reader),
    "model": ("model", predict_reader),
    "cv": ("model.cv", lambda b: report_reader),
}


@pytest.mark.parametrize("artefact", sorted(ARTEFACTS))
def test_every_damaged_file_is_named_or_harmless(artefact, built, tmp_path, capsys, monkeypatch):
    """Every file of `artefact`, each way of DAMAGES, against one run of its intact readers."""
    sub, make = ARTEFACTS[artefact]
    art, readers = built / sub, make(built)
    intact = tmp_path / "intact"
    intact.mkdir()
    expected = {}
    for i, (args, result) in enumerate(readers(art, intact)):
        code, _, err = run_cli(capsys, monkeypatch, *args)
        assert code == 0, err
        expected[i] = result()
    files = files_of(art)
    assert files, art
    problems = []
    for how in DAMAGES:
        for rel in files:
            problems += check_case(art, rel, how, readers, tmp_path, expected, capsys, monkeypatch)
    print(f"{artefact} x {DAMAGES}: {len(files)} files")
    assert not problems, (f"{len(problems)} of {len(files)} files x {len(DAMAGES)} damages:\n"
                          + "\n".join(problems))


def test_predict_without_interval_needs_no_reliability(built, tmp_path, capsys, monkeypatch):
    """The optional parts stay optional: predict without --interval goes on (and says so)."""
    model = Path(shutil.copytree(built / "model", tmp_path / "model"))
    for name in ("reliability.npz", "reliability-tissue-free.npz"):
        (model / name).unlink()
    code, _, err = run_cli(capsys, monkeypatch, "predict", model, built / "genes.tsv", "--out",
                           tmp_path / "p.parquet")
    assert code == 0, err
    assert "reliability.npz is missing" in err and "refit" in err
    code, _, err = run_cli(capsys, monkeypatch, "predict", model, built / "genes.tsv", "--out",
                           tmp_path / "q.parquet", "--interval", "0.9")
    assert code == 1 and "reliability.npz is missing" in err and "refit" in err, err
    assert not (tmp_path / "q.parquet").exists()
    assert np.isfinite(parquet_content(tmp_path / "p.parquet").column("expr").combine_chunks()
                       .storage.values.to_numpy()).all()
