"""The README's "Your own data in five commands", run as written.

The commands are parsed out of README.md (so the test breaks when the README drifts) and run in
a directory holding what they name: a salmon-layout training set (per-sample ``quant.sf``, a sample
sheet with tissue and donor, the transcript -> gene map) and, for predict, a genes x samples TPM
table of new samples with their sheet. In-process through `cli.main()` on the shared Ray session.
The predictions must carry the per-isoform reliability and the 0.9 intervals that the default
`raviso fit` (with its donor-grouped CV) gives the MODEL.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import numpy as np
import pytest

from test_bad_input import run_cli

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "## Your own data in five commands"


def readme_commands() -> list[list[str]]:
    """The `raviso ...` lines of the README's own-data block, comments dropped, as argv lists."""
    text = README.read_text()
    block = text.split(SECTION, 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    lines = [line.split("#", 1)[0].strip() for line in block.splitlines()]
    return [shlex.split(line)[1:] for line in lines if line.startswith("raviso ")]


def own_data(root: Path, n_donors: int = 6, tissues=("liver", "lung"), n_genes: int = 10,
             seed: int = 0, new: int = 3) -> dict:
    """What the README's commands read, in `root`: ``quant/<sample>/quant.sf`` (salmon),
    samples.csv, tx2gene.tsv, gene_tpm.tsv (genes x `new` unseen samples, TPM, one gene the
    models never saw) and sheet.csv (their tissue, spelled differently). Isoform shares depend on
    the tissue and on the gene's level, so the models have something to learn."""
    rng = np.random.default_rng(seed)
    n_tx = rng.integers(1, 4, n_genes)
    genes = [f"ENSG{g:011d}" for g in range(n_genes)]
    tx_gene = [g for g, k in zip(genes, n_tx) for _ in range(k)]
    txs = [f"ENST{j:011d}.1" for j in range(len(tx_gene))]
    base = rng.normal(3, 1.5, n_genes)
    t_eff = rng.normal(0, 0.8, (len(tissues), n_genes))
    slope = rng.normal(0, 1.0, len(txs))
    t_share = rng.normal(0, 0.7, (len(tissues), len(txs)))
    cols_of = np.split(np.arange(len(txs)), np.cumsum(n_tx)[:-1])     # each gene's transcripts

    def sample(t: int, donor_eff) -> np.ndarray:
        level = base + t_eff[t] + donor_eff + rng.normal(0, 0.3, n_genes)
        gene_tpm = np.exp2(level)
        logits = slope * np.repeat(level - base, n_tx) + t_share[t] + rng.normal(0, 0.2, len(txs))
        tpm = np.empty(len(txs))
        for g, cols in enumerate(cols_of):
            w = np.exp(logits[cols])
            tpm[cols] = gene_tpm[g] * w / w.sum()
        return tpm / tpm.sum() * 1e6

    rows = []
    for d in range(n_donors + 2):          # the last two donors: new samples for predict
        donor_eff = rng.normal(0, 0.4, n_genes)
        for t, tissue in enumerate(tissues):
            rows.append((f"d{d}_{tissue}", tissue, f"donor{d}", sample(t, donor_eff)))
    train, test = rows[:2 * n_donors], rows[2 * n_donors:][:new]
    length = rng.integers(500, 4000, len(txs))
    for sid, _, _, tpm in train:
        path = root / "quant" / sid / "quant.sf"
        path.parent.mkdir(parents=True)
        eff = length - 150.0
        reads = tpm * eff / 1e6 * 20
        path.write_text("Name\tLength\tEffectiveLength\tTPM\tNumReads\n" + "".join(
            f"{x}\t{L}\t{e:.1f}\t{v:.4f}\t{c:.3f}\n"
            for x, L, e, v, c in zip(txs, length, eff, tpm, reads)))
    (root / "samples.csv").write_text("sample,path,tissue,donor\n" + "".join(
        f"{s},quant/{s}/quant.sf,{t},{d}\n" for s, t, d, _ in train))
    (root / "tx2gene.tsv").write_text("".join(f"{x}\t{g}\n" for x, g in zip(txs, tx_gene)))
    gene_tpm = np.array([[tpm[cols].sum() for cols in cols_of] for *_, tpm in test])
    (root / "gene_tpm.tsv").write_text(
        "gene_id\t" + "\t".join(s for s, *_ in test) + "\n"
        + "".join(f"{g}.3\t" + "\t".join(f"{v:.4f}" for v in col)
                  + "\n" for g, col in zip(genes, gene_tpm.T))
        + "ENSG99999999999\t" + "\t".join("5.0" for _ in test) + "\n")
    (root / "sheet.csv").write_text("sample,tissue\n" + "".join(
        f"{s},{t.upper()}\n" for s, t, *_ in test))
    return {"train": [r[0] for r in train], "test": [r[0] for r in test],
            "tissues": [r[1] for r in test], "genes": genes, "transcripts": txs}


def test_readme_lists_the_commands_a_salmon_user_needs():
    cmds = readme_commands()
    assert [c[0] for c in cmds] == ["import", "cv", "fit", "predict"]
    assert "--tx2gene" in cmds[0] or "--gtf" in cmds[0]        # salmon files carry no genes
    assert "--interval" in cmds[3]


@pytest.mark.ray
def test_readme_quickstart_runs_verbatim_on_salmon_files(tmp_path, monkeypatch, capsys,
                                                         ray_session):
    import anndata

    d = own_data(tmp_path)
    monkeypatch.chdir(tmp_path)
    said = {}
    for argv in readme_commands():
        code, out, err = run_cli(capsys, monkeypatch, *argv)
        assert code == 0, (argv, out, err)
        said[argv[0]] = out + err
    # fit measured the MODEL it ships against the best baseline, and said so
    assert "measured by CV" in said["fit"] and "best baseline" in said["fit"]
    assert "--save-model" not in said["fit"] and "(none)" not in said["fit"]
    assert ", 1 input gene the MODEL does not use (dropped)" in said["predict"]
    pred = next(Path(a) for a in readme_commands()[3] if a.endswith(".h5ad"))
    a = anndata.read_h5ad(pred)
    assert a.obs_names.tolist() == d["test"] and a.n_vars == len(d["transcripts"])
    assert {"oof_mse", "oof_r2", "oof_r", "reliable", "halfwidth_0.9"} <= set(a.var.columns)
    assert a.var["oof_n"].min() == len(d["train"])              # every sample held out once
    assert {"lower", "upper"} <= set(a.layers)
    assert np.all(a.layers["lower"] <= a.X + 1e-6) and np.all(a.X <= a.layers["upper"] + 1e-6)
    assert np.isfinite(np.asarray(a.layers["upper"])).all()
    # the user's spelling and the MODEL's tissue side by side
    assert a.obs["tissue"].tolist() == [t.upper() for t in d["tissues"]]
    assert a.obs["tissue_matched"].tolist() == d["tissues"]
