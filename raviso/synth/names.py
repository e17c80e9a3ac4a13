"""Realistic-looking identifiers for `raviso synth`: tissues, GTEx / GEO sample ids, gene symbols,
ENSG / ENST ids.

Why bother: downstream code must cope with the real files' quirks (GTEx donors encoded in the
sample id, gene symbols with dashes and dots, versioned ENST ids in no sorted order), and synthetic
data that looks like ``gene_17`` would let code that mishandles them pass its tests.
"""

from __future__ import annotations

import numpy as np

# The 54 GTEx v8 tissues with their sample counts in the v8 transcript TPM file (17,382 samples;
# from ../shared/realdata/gtex_v8_hk1). The counts are the sampling weights: very unequal, some
# tiny.
GTEX_TISSUES: tuple[tuple[str, int], ...] = (
    ("Muscle - Skeletal", 803), ("Whole Blood", 755), ("Skin - Sun Exposed (Lower leg)", 701),
    ("Adipose - Subcutaneous", 663), ("Artery - Tibial", 663), ("Thyroid", 653),
    ("Nerve - Tibial", 619), ("Skin - Not Sun Exposed (Suprapubic)", 604), ("Lung", 578),
    ("Esophagus - Mucosa", 555), ("Adipose - Visceral (Omentum)", 541),
    ("Esophagus - Muscularis", 515), ("Cells - Cultured fibroblasts", 504),
    ("Breast - Mammary Tissue", 459), ("Heart - Left Ventricle", 432), ("Artery - Aorta", 432),
    ("Heart - Atrial Appendage", 429), ("Colon - Transverse", 406),
    ("Esophagus - Gastroesophageal Junction", 375), ("Colon - Sigmoid", 373), ("Testis", 361),
    ("Stomach", 359), ("Pancreas", 328), ("Pituitary", 283), ("Adrenal Gland", 258),
    ("Brain - Cortex", 255), ("Brain - Caudate (basal ganglia)", 246),
    ("Brain - Nucleus accumbens (basal ganglia)", 246), ("Prostate", 245), ("Spleen", 241),
    ("Brain - Cerebellum", 241), ("Artery - Coronary", 240), ("Liver", 226),
    ("Brain - Cerebellar Hemisphere", 215), ("Brain - Frontal Cortex (BA9)", 209),
    ("Brain - Putamen (basal ganglia)", 205), ("Brain - Hypothalamus", 202),
    ("Brain - Hippocampus", 197), ("Small Intestine - Terminal Ileum", 187), ("Ovary", 180),
    ("Brain - Anterior cingulate cortex (BA24)", 176), ("Cells - EBV-transformed lymphocytes", 174),
    ("Minor Salivary Gland", 162), ("Brain - Spinal cord (cervical c-1)", 159), ("Vagina", 156),
    ("Brain - Amygdala", 152), ("Uterus", 142), ("Brain - Substantia nigra", 139),
    ("Kidney - Cortex", 85), ("Bladder", 21), ("Cervix - Endocervix", 10),
    ("Cervix - Ectocervix", 9), ("Fallopian Tube", 9), ("Kidney - Medulla", 4),
)
TISSUES: tuple[str, ...] = tuple(t for t, _ in GTEX_TISSUES)
TISSUE_WEIGHTS = np.array([n for _, n in GTEX_TISSUES], dtype=np.float64)


def tissue_groups() -> np.ndarray:
    """Organ group of each tissue (the part before ' - '), so related tissues share biology."""
    groups = [t.split(" - ")[0] for t in TISSUES]
    _, idx = np.unique(groups, return_inverse=True)
    return idx


_ALNUM = np.array(list("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
_UPPER = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))


def _codes(rng: np.random.Generator, n: int, length: int, alphabet=_ALNUM) -> list[str]:
    """`n` DISTINCT random codes of `length` characters."""
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < n:
        draw = rng.choice(alphabet, size=(2 * (n - len(out)) + 8, length))
        for row in draw:
            s = "".join(row)
            if s not in seen:
                seen.add(s)
                out.append(s)
                if len(out) == n:
                    break
    return out


def donor_ids(rng: np.random.Generator, n: int) -> list[str]:
    """GTEx donor ids: ``GTEX-1117F`` style (4-5 alphanumerics)."""
    half = n // 2
    return ([f"GTEX-{c}" for c in _codes(rng, half, 5)]
            + [f"GTEX-{c}" for c in _codes(rng, n - half, 4)])


def gtex_sample_ids(rng: np.random.Generator, donors: list[str], donor: np.ndarray,
                    tissue: np.ndarray) -> list[str]:
    """``GTEX-<donor>-<site>-SM-<aliquot>``; the donor is the first two dash-separated fields,
    as `raviso.data.donor_of` expects. Site codes are per tissue (``0226``...), aliquots unique."""
    aliquots = _codes(rng, len(donor), 5)
    return [f"{donors[d]}-{(t + 1) * 100 + 26:04d}-SM-{a}"
            for d, t, a in zip(donor.tolist(), tissue.tolist(), aliquots)]


def geo_sample_ids(rng: np.random.Generator, n: int) -> list[str]:
    """ARCHS4 samples are GEO accessions (``GSM4747249``), distinct, in no sorted order."""
    nums = rng.choice(5_900_000, size=n, replace=False) + 100_000
    return [f"GSM{x}" for x in nums.tolist()]


# HGNC-like family prefixes; symbols are prefix + number (+ letter), plus lncRNA / clone styles.
_FAMILIES = (
    "ZNF SLC TMEM KIAA CCDC FAM ABC ANKRD ARHGAP ATP C1orf C2orf C6orf C11orf CDH CYP DNAJ "
    "FBXO GPR HIST1H2 IFT KCN KLHL LRRC MAP3K MYO NDUF OR2 OR4 OR5 PCDH PPP1R PRR RAB RBM RNF "
    "RPL RPS SCN SEC SERPIN SH3 SLC2 SPATA TBC1D TRIM TTC UBE2 USP WDR ZBTB ZC3H ADAM COL CDK "
    "CLEC DHX EIF FOX GAB HOX IL KRT LIN MED NUP PAX PIK3 PLEKH PTPN RHO SMAD SOX STK TNF TRAF "
    "VPS WNT XKR YTHDF ZFP"
).split()


def gene_symbols(rng: np.random.Generator, n: int) -> list[str]:
    """`n` distinct gene symbols in random order: mostly family+number(+letter) (``SLC24A3``,
    ``TMEM38B``), some antisense (``...-AS1``), LINC and clone-based names
    (``RP11-123A4.1``, ``ABC7-42404400C24.1``) that contain dashes and dots."""
    out: list[str] = []
    seen: set[str] = set()
    fams = np.array(_FAMILIES)
    while len(out) < n:
        m = 2 * (n - len(out)) + 16
        kind = rng.random(m)
        fam = rng.choice(fams, m)
        num = rng.integers(1, 400, m)
        let = rng.choice(_UPPER[:8], m)
        sub = rng.integers(1, 20, m)
        for k, f, a, l, s in zip(kind, fam, num, let, sub):
            if k < 0.70:
                sym = f"{f}{a}" + (l if k < 0.25 else "")
            elif k < 0.78:
                sym = f"{f}{a}-AS{s % 3 + 1}"
            elif k < 0.88:
                sym = f"LINC{a * 7 + s:05d}"
            elif k < 0.97:
                sym = f"RP{s}-{a}{l}{s % 9 + 1}.{s % 4 + 1}"
            else:
                sym = f"ABC{s % 13 + 1}-{a * 117_000 + s}{l}{s}.1"
            if sym not in seen:
                seen.add(sym)
                out.append(sym)
                if len(out) == n:
                    break
    return out


def ensembl_ids(rng: np.random.Generator, prefix: str, n: int) -> list[str]:
    """Distinct versioned Ensembl ids (``ENSG00000000003.14``), sorted ascending (as the
    annotation file lists them); callers permute where the real files are unordered."""
    nums = np.sort(rng.choice(800_000, size=n, replace=False) + 3)
    vers = rng.integers(1, 20, n)
    return [f"{prefix}{x:011d}.{v}" for x, v in zip(nums.tolist(), vers.tolist())]
