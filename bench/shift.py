"""Prediction intervals and the applicability domain under shift (docs/predictions.md).

    heavy .venv/bin/python -m bench.shift --preset tiny --seed 0 [--epochs 15] [--json OUT]

A synthetic world (`raviso synth`, unchanged: the shifts are applied to its gene matrix afterwards)
is split three ways: a held-out TISSUE GROUP (every sample of a few tissues), held-out TEST DONORS
(20% of the other donors, their samples of the remaining tissues) and the TRAINING set (the rest).
share_net is cross-validated on the training set by donor-grouped folds, with its tissue=False twin
(the unit of work and the arrays `raviso cv --save-model` uses, run in this process: no Tune), and
fitted on all of it with its reliability and applicability domain, as `raviso fit` does. Then
`raviso predict --interval 0.9` is applied to four test sets, each scored against the measured
isoforms of the same samples:

- ``in_domain``: the test donors' samples as measured;
- ``unseen_tissue``: the held-out tissue group (predicted by the tissue-free path);
- ``batch_offset``: the test donors' genes + one offset per gene, N(0, OFFSET_SD) log2 units (a
  platform / batch effect);
- ``low_depth``: the test donors' genes re-measured at DEPTH_FACTOR of the depth (more dropout
  and noise, `raviso.synth.world.GTEX_GENE`'s measurement model).

Reported: per set, how many samples predict calls out of domain and not calibrated, the 90%
interval coverage of the calibrated samples and of the rest, the same with the plain (unscaled)
conformal widths, and the AUC of ``domain_score`` at
separating each shifted set (and all of them) from ``in_domain``. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np

VARIANT = "share_net"
OFFSET_SD = 0.5
DEPTH_FACTOR = 0.05
LEVEL = 0.9


def subset(data, rows):
    """The labelled rows `rows` as an in-memory `Labelled`."""
    from raviso.data.labelled import Labelled

    rows = np.asarray(rows)
    return Labelled(sample_id=data.sample_id[rows], tissue=data.tissue[rows],
                    donor=data.donor[rows], genes=np.array(data.genes[rows], np.float32),
                    isoforms=np.array(data.isoforms[rows], np.float32),
                    gene_names=data.gene_names, isoform_names=data.isoform_names,
                    isoform_gene=data.isoform_gene)


def split(data, seed: int = 0, donor_fraction: float = 0.2, tissue_fraction: float = 0.1):
    """(training rows, test-donor rows, held-out-tissue rows): the tissues held out are mid-sized
    ones, added until they hold `tissue_fraction` of the samples."""
    rng = np.random.default_rng(seed)
    names, counts = np.unique(data.tissue, return_counts=True)
    held, total = [], 0
    for j in np.argsort(np.abs(counts - np.median(counts)), kind="stable"):
        if total >= tissue_fraction * data.n:
            break
        held.append(names[j])
        total += counts[j]
    in_tissue = np.isin(data.tissue, held)
    donors = np.unique(data.donor[~in_tissue])
    test_donors = rng.choice(donors, max(1, int(round(donor_fraction * len(donors)))),
                             replace=False)
    test = ~in_tissue & np.isin(data.donor, test_donors)
    return np.flatnonzero(~in_tissue & ~test), np.flatnonzero(test), np.flatnonzero(in_tissue)


def lower_depth(X, factor: float, rng) -> np.ndarray:
    """log2(TPM+1) genes as if measured at `factor` of their depth: Poisson-like dropout and the
    extra log-normal noise of `GTEX_GENE`'s level-dependent model."""
    from raviso.synth.world import GTEX_GENE as m

    tpm = np.exp2(np.asarray(X, np.float64)) - 1
    lam_old = tpm * m.depth
    lam = lam_old * factor
    sd = np.sqrt(np.maximum((m.sd_floor + m.sd_low / np.sqrt(lam + 1)) ** 2
                            - (m.sd_floor + m.sd_low / np.sqrt(lam_old + 1)) ** 2, 0))
    noisy = np.round(tpm * np.exp2(sd * rng.standard_normal(tpm.shape)), 2)
    seen = rng.random(tpm.shape) < -np.expm1(-lam)
    return np.where(seen, np.log2(noisy + 1), 0).astype(np.float32)


def test_sets(data, test_rows, tissue_rows, seed: int = 0) -> dict:
    """{name: (genes, rows of `data` whose isoforms are the truth, sample ids)}."""
    rng = np.random.default_rng(seed + 1)
    G = np.asarray(data.genes[test_rows], np.float32)
    ids = [str(s) for s in data.sample_id[test_rows]]
    offset = rng.normal(0, OFFSET_SD, G.shape[1]).astype(np.float32)
    return {"in_domain": (G, test_rows, ids),
            "unseen_tissue": (np.asarray(data.genes[tissue_rows], np.float32), tissue_rows,
                              [str(s) for s in data.sample_id[tissue_rows]]),
            "batch_offset": (np.maximum(G + offset, 0), test_rows, [f"{s}.offset" for s in ids]),
            "low_depth": (lower_depth(G, DEPTH_FACTOR, rng), test_rows,
                          [f"{s}.depth" for s in ids])}


def cv_model(train, out, k: int = 5, options: dict | None = None, tissue_free: bool = True,
             variant: str = VARIANT):
    """Donor-grouped CV of `variant` (and its tissue=False twin) on `train`, then MODEL at `out`
    with its reliability and applicability domain: what `raviso fit` ships."""
    from raviso.evaluate.cv import run_trial
    from raviso.evaluate.engine.repeats import repeated_folds
    from raviso.models.saved import ModelExtras, fit_model
    from raviso.trust.reliability import OofAccumulator, model_reliability

    folds = repeated_folds(train.tissue, train.donor, k=k, seed=0, repeats=1)
    columns = [variant] + ([f"{variant}[tissue=False]"] if tissue_free else [])
    oof, errors = {}, {}
    for column in columns:
        opts = {**(options or {}), **({"tissue": False} if column != variant else {})}
        for f in range(folds.k):
            acc = OofAccumulator()
            res = run_trial(train, folds.fold, f, variant, opts, taps=[acc])
            oof[(f, column)], errors[(f, column)] = acc.result(), res["per_sample"]
    evidence = model_reliability(oof, variant, train, (errors, folds))
    fit_model(train, variant, out, options=options, overwrite=True,
              extras=ModelExtras(**evidence))
    return out


def gene_h5ad(path, genes, gene_names, ids, tissue):
    import anndata as ad
    import pandas as pd

    ad.AnnData(X=np.asarray(genes, np.float32), obs=pd.DataFrame({"tissue": list(tissue)},
                                                                 index=list(ids)),
               var=pd.DataFrame(index=list(gene_names))).write_h5ad(path)
    return path


def predict_set(model, data, genes, rows, ids, work: Path, name: str, say=None) -> dict:
    """predict --interval LEVEL on one set; per sample: coverage (as written and with the plain
    conformal widths), in_domain, domain_score."""
    import anndata as ad

    from raviso.serve.predict import predict_file

    src = gene_h5ad(work / f"{name}.in.h5ad", genes, data.gene_names, ids, data.tissue[rows])
    out = predict_file(model, src, work / f"{name}.h5ad", interval=LEVEL, quiet=True,
                       overwrite=True, warn=say or (lambda s: None))
    a = ad.read_h5ad(out)
    Y = np.asarray(data.isoforms[rows], np.float32)
    P, lo, hi = np.asarray(a.X), a.layers["lower"], a.layers["upper"]
    scale = a.obs["interval_scale"].to_numpy()[:, None]
    w0 = (hi - P) / scale
    return {"coverage": ((lo <= Y + 1e-6) & (Y <= hi + 1e-6)).mean(axis=1),
            "coverage_plain": ((np.maximum(P - w0, 0) <= Y + 1e-6) & (Y <= P + w0 + 1e-6)
                               ).mean(axis=1),
            "in_domain": a.obs["in_domain"].to_numpy(bool),
            "calibrated": a.obs["calibrated"].to_numpy(bool),
            "domain_score": a.obs["domain_score"].to_numpy(float),
            "domain_pct": a.obs["domain_pct"].to_numpy(float)}


def auc(neg, pos) -> float:
    neg, pos = np.asarray(neg), np.asarray(pos)
    return float(((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])).mean())


def summarise(per_set: dict) -> dict:
    """Per set and pooled: samples out of domain and not calibrated, the coverage of the samples
    predict calls calibrated and of the rest, and the domain score's AUC."""
    out = {}
    for name, r in list(per_set.items()) + [("all", pool(per_set))]:
        row = {"n": int(len(r["in_domain"])), "out_of_domain": int((~r["in_domain"]).sum()),
               "not_calibrated": int((~r["calibrated"]).sum())}
        for key, sel in (("calibrated", r["calibrated"]), ("not_calibrated", ~r["calibrated"])):
            for cov in ("coverage", "coverage_plain"):
                row[f"{cov}_{key}"] = float(r[cov][sel].mean()) if sel.any() else None
        if name != "in_domain":
            neg = per_set["in_domain"]["domain_score"]
            pos = r["domain_score"] if name != "all" else pool(
                {k: v for k, v in per_set.items() if k != "in_domain"})["domain_score"]
            row["auc"] = auc(neg, pos)
        out[name] = row
    return out


def pool(per_set: dict) -> dict:
    keys = next(iter(per_set.values())).keys()
    return {k: np.concatenate([r[k] for r in per_set.values()]) for k in keys}


def run(preset: str = "tiny", seed: int = 0, epochs: int | None = None, k: int = 5,
        work: Path | None = None, say=print) -> dict:
    from raviso.evaluate.engine.inputs import load_labelled
    from raviso.io.convert import convert
    from raviso.synth.generate import generate

    work = Path(work or tempfile.mkdtemp(prefix="raviso-shift-"))
    work.mkdir(parents=True, exist_ok=True)
    if not (work / "store").exists():
        generate(work / "synth", preset=preset, seed=seed, heldout=False, overwrite=True)
        convert(work / "store", work / "synth")
    _, data = load_labelled(work / "store", {})
    train_rows, test_rows, tissue_rows = split(data, seed)
    say(f"training {len(train_rows)}, test donors' samples {len(test_rows)}, held-out tissue "
        f"group {len(tissue_rows)} samples")
    options = {"seed": 0, **({"epochs": int(epochs)} if epochs else {})}
    model = work / "model"                  # kept: rerun the predictions alone with the same --work
    if not (model / "model.json").exists():
        cv_model(subset(data, train_rows), model, k=k, options=options)
    per_set = {name: predict_set(model, data, G, rows, ids, work, name)
               for name, (G, rows, ids) in test_sets(data, test_rows, tissue_rows, seed).items()}
    return {"preset": preset, "seed": seed, "level": LEVEL, "folds": k, "epochs": epochs,
            "offset_sd": OFFSET_SD, "depth_factor": DEPTH_FACTOR, "table": summarise(per_set)}


def table(doc: dict) -> str:
    def f(v):
        return "-" if v is None else f"{v:.3f}"

    lines = ["| set | samples | out of domain | not calibrated | coverage: calibrated | not "
             "calibrated | plain widths: calibrated | not calibrated | AUC vs in_domain |",
             "|" + " --- |" * 9]
    for name, r in doc["table"].items():
        lines.append(f"| {name} | {r['n']} | {r['out_of_domain']} | {r['not_calibrated']} | "
                     f"{f(r['coverage_calibrated'])} | {f(r['coverage_not_calibrated'])} | "
                     f"{f(r['coverage_plain_calibrated'])} | "
                     f"{f(r['coverage_plain_not_calibrated'])} | {f(r.get('auc'))} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="tiny")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--work", type=Path, default=None)
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    doc = run(a.preset, a.seed, a.epochs, a.folds, a.work)
    doc["load_average"] = os.getloadavg()
    print(table(doc))
    if a.json:
        a.json.write_text(json.dumps(doc, indent=1))
    print(json.dumps(doc))


if __name__ == "__main__":
    main()
