"""`raviso import`'s gene TPM and CPM agree with tximport's logic (the
`pytximport` package, a test extra) to 1e-5 relative, on generated salmon and RSEM files with
realistic sizes (2,000 transcripts, 600 genes, 6 samples)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytximport = pytest.importorskip("pytximport")

from raviso.data import Store  # noqa: E402
from raviso.io.importer import import_samples  # noqa: E402

N_TX, N_GENES, N_SAMPLES = 2000, 600, 6


def _world(seed=0):
    rng = np.random.default_rng(seed)
    tx = [f"ENST{k:011d}.{1 + k % 3}" for k in range(N_TX)]
    gene = [f"ENSG{int(g):011d}" for g in np.sort(rng.integers(0, N_GENES, N_TX))]
    length = rng.integers(300, 8000, N_TX).astype(float)
    eff = np.maximum(length - rng.uniform(150, 250, N_TX), 1.0)
    counts = rng.negative_binomial(2, 0.02, (N_SAMPLES, N_TX)) * (rng.random((N_SAMPLES, N_TX)) > .3)
    return tx, gene, length, eff, counts.astype(float)


def _tpm(counts, eff):
    rate = counts / eff
    return rate / rate.sum() * 1e6


def _files(tmp_path, kind):
    tx, gene, length, eff, counts = _world()
    paths = []
    for s in range(N_SAMPLES):
        tpm = _tpm(counts[s], eff)
        if kind == "salmon":
            p = tmp_path / f"S{s}" / "quant.sf"
            p.parent.mkdir(parents=True)
            rows = ["Name\tLength\tEffectiveLength\tTPM\tNumReads"] + [
                f"{t}\t{int(L)}\t{e:.4f}\t{v:.6f}\t{c:.3f}"
                for t, L, e, v, c in zip(tx, length, eff, tpm, counts[s])]
        else:
            p = tmp_path / f"S{s}.isoforms.results"
            rows = ["transcript_id\tgene_id\tlength\teffective_length\texpected_count\tTPM\tFPKM"
                    "\tIsoPct"] + [
                f"{t}\t{g}\t{int(L)}\t{e:.2f}\t{c:.2f}\t{v:.2f}\t{v / 2:.2f}\t0.00"
                for t, g, L, e, v, c in zip(tx, gene, length, eff, tpm, counts[s])]
        p.write_text("\n".join(rows) + "\n")
        paths.append(p)
    t2g = tmp_path / "tx2gene.tsv"
    pd.DataFrame({"transcript_id": tx, "gene_id": gene}).to_csv(t2g, sep="\t", index=False,
                                                                 header=False)
    sheet = tmp_path / "sheet.tsv"
    sheet.write_text("sample\tpath\n" + "".join(f"S{s}\t{p}\n" for s, p in enumerate(paths)))
    return paths, sheet, t2g, pd.DataFrame({"transcript_id": tx, "gene_id": gene})


def _gene_table(txi, key):
    values = txi.X if key == "counts" else txi.obsm[key]
    values = values.to_numpy() if hasattr(values, "to_numpy") else np.asarray(values)
    return pd.DataFrame(values, index=list(txi.obs_names), columns=list(txi.var_names))


@pytest.mark.parametrize("kind", ["salmon", "rsem"])
def test_gene_tpm_and_cpm_match_tximport(tmp_path, kind):
    paths, sheet, t2g, t2g_df = _files(tmp_path, kind)
    txi = pytximport.tximport([str(p) for p in paths], kind, t2g_df,
                              ignore_transcript_version=False)
    ref_tpm = _gene_table(txi, "abundance")
    ref_counts = _gene_table(txi, "counts")
    ref_cpm = ref_counts.div(ref_counts.sum(axis=1), axis=0) * 1e6

    st = Store(import_samples(sheet, tmp_path / "tpm", tx2gene_path=t2g))
    tpm = pd.DataFrame(2.0 ** st.numpy("gtex_gene").astype(np.float64) - 1, columns=st.genes)
    tpm = tpm[ref_tpm.columns].to_numpy()
    assert tpm.shape == (N_SAMPLES, ref_tpm.shape[1]) and ref_tpm.to_numpy().max() > 1e3
    np.testing.assert_allclose(tpm, ref_tpm.to_numpy(), rtol=1e-5, atol=1e-9)

    # CPM: the same files given as two-column count tables (no lengths) -> log2(CPM+1)
    tables = []
    for s, p in enumerate(paths):
        df = pd.read_csv(p, sep="\t")
        idc, cc = ("Name", "NumReads") if kind == "salmon" else ("transcript_id",
                                                                   "expected_count")
        q = tmp_path / "counts" / f"S{s}.tsv"
        q.parent.mkdir(exist_ok=True)
        df[[idc, cc]].rename(columns={idc: "id", cc: "counts"}).to_csv(q, sep="\t", index=False)
        tables.append(q)
    sheet2 = tmp_path / "counts.tsv"
    sheet2.write_text("sample\tpath\n" + "".join(f"S{s}\t{q}\n" for s, q in enumerate(tables)))
    st2 = Store(import_samples(sheet2, tmp_path / "cpm", tx2gene_path=t2g))
    assert st2.manifest["units"] == "log2(CPM+1)"
    cpm = pd.DataFrame(2.0 ** st2.numpy("gtex_gene").astype(np.float64) - 1, columns=st2.genes)
    np.testing.assert_allclose(cpm[ref_cpm.columns].to_numpy(), ref_cpm.to_numpy(), rtol=1e-5,
                               atol=1e-9)
