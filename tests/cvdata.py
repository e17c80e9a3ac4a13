"""Tiny labelled stores and pretraining runs for the cv / report / fit / predict tests.

Built with the real writers (`raviso.data.store.write_store`, the run layout `raviso.train.runs.load_run`
reads), small enough that a whole Tune run over them takes seconds.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np

TISSUES = ["Lung", "Liver", "Brain"]


def tiny_labelled(n_donors: int = 12, per_donor: int = 4, n_genes: int = 16,
                  n_isoforms: int = 24, seed: int = 0, rare: str | None = "Kidney - Medulla"):
    """Arrays of a synthetic GTEx-like labelled set: donors give several tissues; each isoform is
    a tissue effect plus a linear function of the genes (truth) plus noise (observed)."""
    rng = np.random.default_rng(seed)
    sample_id, tissue, donor = [], [], []
    for d in range(n_donors):
        for k in range(per_donor):
            t = TISSUES[(d + k) % len(TISSUES)]
            if rare and d == 0 and k == 0:
                t = rare                       # one sample: fewer than the folds
            sample_id.append(f"GTEX-D{d:03d}-{k:04d}-SM-{d}{k}")
            tissue.append(t)
            donor.append(f"GTEX-D{d:03d}")
    n = len(sample_id)
    t_idx = np.array([sorted(set(tissue)).index(t) for t in tissue])
    t_eff = rng.normal(0, 1, (len(set(tissue)), n_genes))
    G = (3 + t_eff[t_idx] + rng.normal(0, 0.7, (n, n_genes))).clip(0).astype(np.float32)
    W = rng.normal(0, 0.4, (n_genes, n_isoforms)) * (rng.random((n_genes, n_isoforms)) < 0.3)
    truth = (1 + (G - G.mean(0)) @ W).clip(0).astype(np.float32)
    Y = (truth + rng.normal(0, 0.3, truth.shape)).clip(0).astype(np.float32)
    genes = [f"G{j:03d}" for j in range(n_genes)]
    isoforms = [f"ENST{j:05d}" for j in range(n_isoforms)]
    iso_gene = [genes[j % n_genes] for j in range(n_isoforms)]
    return dict(G=G, Y=Y, truth=truth, sample_id=sample_id, tissue=tissue, donor=donor,
                genes=genes, isoforms=isoforms, isoform_gene=iso_gene)


def write_tiny_store(path: Path, **kw) -> tuple[Path, dict]:
    from raviso.data.store import write_store

    d = tiny_labelled(**kw)
    meta = dict(sample_id=d["sample_id"], tissue=d["tissue"], donor=d["donor"])
    write_store(path, d["genes"], gtex_gene=dict(X=d["G"], **meta),
                gtex_isoform=dict(X=d["Y"], **meta), truth=dict(X=d["truth"], **meta),
                isoforms=d["isoforms"], isoform_gene=d["isoform_gene"])
    return Path(path), d


def write_gene_table(path: Path, sample_ids, genes, X) -> Path:
    """A samples x genes TSV (values to 4 decimals), as a user hands `raviso predict`."""
    with open(path, "w") as f:
        f.write("sample_id\t" + "\t".join(genes) + "\n")
        for s, row in zip(sample_ids, X):
            f.write(s + "\t" + "\t".join(f"{v:.4f}" for v in row) + "\n")
    return path


def write_archs4_store(path: Path, n: int = 1200, genes: int = 24, seed: int = 0) -> Path:
    """An ARCHS4-only store of rank-3 structure + noise (log2(TPM+1)-like): for pretraining runs
    whose interest is the run itself (faults, node loss), not the fit."""
    from raviso.data.store import write_store

    rng = np.random.default_rng(seed)
    W = rng.normal(size=(3, genes))
    X = np.clip(rng.normal(size=(n, 3)) @ W + 3 + 0.3 * rng.normal(size=(n, genes)), 0, None)
    return write_store(path, [f"G{i}" for i in range(genes)],
                       archs4={"X": X.astype(np.float32),
                               "sample_id": [f"GSM{i}" for i in range(n)]})


def write_tiny_run(path: Path, genes, latent_dim: int = 4, beta: float = 1.0, seed: int = 0,
                   name: str | None = None) -> Path:
    """A finished pretraining RUN in the layout `raviso.train.runs.load_run` reads (untrained weights:
    these tests check plumbing and numbers downstream of the encoder, not the encoder)."""
    import torch
    from safetensors.torch import save_file

    from raviso.models.vae.model import VAE, VAEConfig

    path = Path(path)
    path.mkdir(parents=True)
    mc = VAEConfig(n_genes=len(genes), hidden=(8,), latent_dim=latent_dim, beta=beta)
    torch.manual_seed(seed)
    model = VAE(mc)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(path / "model.safetensors"))
    (path / "genes.txt").write_text("\n".join(genes) + "\n")
    (path / "config.json").write_text(json.dumps(
        {"run_name": name or path.name, "model": mc.to_dict(), "genes": "genes.txt",
         "weights": "model.safetensors", "train": {}}))
    return path


@contextlib.contextmanager
def failing_once(fold: int, variant: str):
    """Inside: the cv trial (`fold`, `variant`) crashes once (`raviso.evaluate.cv.FAULTS`)."""
    import pytest

    import raviso.evaluate.cv as cv

    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(cv.FAULTS, "trial", (fold, variant))
        yield
