"""The generative model behind `raviso synth`: a fixed synthetic "biology" (`World`) and the
functions that turn a block of its samples into expression matrices.

Why this shape (see ../shared/notes/synthetic-calibration.md for the targets):
- Each sample has a low-dimensional biological state: its tissue (an embedding shared within an
  organ group) plus continuous programs ``z`` (partly shared by a donor's samples). Genes are a
  NONLINEAR function of that state (a random tanh layer), so a VAE latent is genuinely useful and a
  linear model on genes is not already optimal.
- TPMs are normalised per sample (compositional, like real TPM), measured with level-dependent
  log-normal noise and Poisson-like dropout, and GTEx TPMs are rounded to 0.01 before log2(x+1),
  exactly as in the course files.
- ARCHS4 samples come from their own distribution (tissue mixtures, cell-line-like states, broader
  programs), carry a per-gene batch shift and more dropout, and are not rounded.
- Isoforms: 1..many per gene (long tail), a dominant isoform, shares = a softmax over the gene's
  isoforms of (base + tissue effect + latent-state effect + a small donor effect); weak minor
  isoforms are switched off in some tissues. Isoform TPM = the gene's TRUE TPM x share x a
  gene-level factor (RSEM and RNA-SeQC disagree), then measured with its own noise: the truth is
  the noise-free log2(TPM+1), and isoforms are not a function of the OBSERVED gene values.

Everything is float32 and vectorised per block of rows; a block's random draws come from its own
generator seeded by (seed, stream, block), so the output does not depend on threading.
`raviso.synth.structure.Structure` adds structure a small labelled set cannot estimate (many
decaying programs, usage by weak programs, compendium-only tissues, platform offset, separately
quantified genes); its default is this world, bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import names
from .structure import Structure, draw_structure, drop_tissues

# -- model constants (calibrated against the real marginals; see tests/test_synth.py) -------------
N_PROGRAMS = 8           # continuous biological programs z
TISSUE_DIM = 6           # tissue embedding size
HIDDEN = 32              # width of the random tanh layer: the nonlinearity
TPM_PER_GENE = 50.0      # mean TPM per gene: 0.95e6 spread over the course's 18,965 genes
GENE_LOG2_SD = 2.8       # spread of gene baselines (log2 TPM) -> real median/90th/99th percentiles
GENE_LOG2_MEAN = 2.3     # (only relative levels matter: TPM is renormalised per sample)
BIO_SD = 0.35            # per-sample, per-gene biological noise (log2), part of the truth
ISO_PER_GENE_NB_R = 0.7  # dispersion of (isoforms per gene - 1): many 1-2, a few dozens
P_OFF_WEAK = 0.35        # chance a weak minor isoform is off in a tissue (a true zero)
ISO_COUNT_LEVEL = 1.0    # log2 TPM gained per doubling of a gene's isoform count
GENE_OFF_MAX = 0.5       # a gene far below GENE_OFF_LEVEL (log2) is silent in this share of tissues
GENE_OFF_LEVEL = 1.5


@dataclass(frozen=True)
class Measurement:
    """How a platform measures TPM: level-dependent log2 noise, dropout, rounding."""

    depth: float            # expected reads per TPM; P(dropout) = exp(-TPM * depth)
    sd_floor: float         # log2 noise sd at high expression
    sd_low: float           # extra log2 noise sd at low expression (shot noise)
    round_tpm: bool         # GTEx: TPM rounded to 0.01 before log2(x+1)


GTEX_GENE = Measurement(depth=30.0, sd_floor=0.15, sd_low=0.8, round_tpm=True)
ARCHS4_GENE = Measurement(depth=4.0, sd_floor=0.25, sd_low=0.8, round_tpm=False)
GTEX_ISOFORM = Measurement(depth=30.0, sd_floor=0.75, sd_low=2.0, round_tpm=True)


@dataclass
class World:
    """Everything fixed by (seed, shapes): names, model parameters and each sample's state."""

    # names (internal gene order = alphabetical; isoforms grouped by gene in that order)
    gene_symbols: list[str]
    gene_ids: list[str]
    isoform_ids: list[str]
    iso_gene: np.ndarray          # (I,) internal gene index of each isoform
    iso_starts: np.ndarray        # (G,) first isoform of each gene
    iso_counts: np.ndarray        # (G,) isoforms per gene
    dominant: np.ndarray          # (I,) bool
    gtex_gene_order: np.ndarray    # file column -> internal gene (a different, shuffled order)
    isoform_order: np.ndarray      # file column -> internal isoform (no sorted order)
    # gene model
    tissue_emb: np.ndarray        # (54, TISSUE_DIM)
    w1: np.ndarray                # (TISSUE_DIM + N_PROGRAMS, HIDDEN)
    b1: np.ndarray                # (HIDDEN,)
    w2: np.ndarray                # (HIDDEN, G), per-gene amplitude folded in
    gene_mu: np.ndarray           # (G,) log2 baseline
    gene_on: np.ndarray           # (54, G) float32 0/1: low genes are silent in some tissues
    archs4_shift: np.ndarray      # (G,) batch effect (log2)
    # isoform model
    iso_base: np.ndarray          # (I,) base logit, dominant isoform high
    iso_tissue: np.ndarray        # (54, I) tissue effect on logits
    iso_latent: np.ndarray        # (HIDDEN, I) latent-state effect on logits
    iso_donor: np.ndarray         # (4, I) donor effect (low rank, small)
    iso_on: np.ndarray            # (54, I) float32 0/1: minor isoforms off in some tissues
    iso_scale: np.ndarray         # (G,) isoform TPM sum / gene TPM (quantifiers disagree)
    # GTEx samples
    gtex_ids: list[str]
    gtex_tissue: np.ndarray       # (N,) tissue index
    gtex_donor: np.ndarray        # (N,) donor index
    gtex_z: np.ndarray            # (N, N_PROGRAMS)
    gtex_depth: np.ndarray        # (N,) per-sample depth multiplier
    donor_q: np.ndarray           # (D, 4)
    # ARCHS4 samples
    archs4_ids: list[str]
    archs4_emb: np.ndarray        # (M, TISSUE_DIM) mixture of tissues + off-manifold states
    archs4_mix: np.ndarray        # (M, 54) tissue mixture weights (gene activity = mix @ on)
    archs4_z: np.ndarray          # (M, N_PROGRAMS)
    archs4_depth: np.ndarray      # (M,)
    # `Structure` options (None when off; see raviso.synth.structure)
    structure: Structure | None = None
    program_sd: np.ndarray | None = None        # (P,) sd of each program
    weak_idx: np.ndarray | None = None          # the weakest programs driving usage directly
    iso_weak: np.ndarray | None = None          # (n_weak, I) their effect on the logits
    compendium_only: np.ndarray | None = None   # tissues the labelled set never has
    gene_extra_tissue: np.ndarray | None = None  # (54, G) log2: gene counts beyond its isoforms

    @property
    def n_genes(self) -> int:
        return len(self.gene_ids)

    @property
    def n_isoforms(self) -> int:
        return len(self.isoform_ids)


def _f32(x) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32)


def tissue_counts(rng: np.random.Generator, n: int) -> np.ndarray:
    """Samples per tissue: proportional to real GTEx v8 sizes, every tissue at least one sample
    (when n >= 54), so small presets still have all 54 tissues, several with fewer than 5."""
    w = names.TISSUE_WEIGHTS / names.TISSUE_WEIGHTS.sum()
    k = len(w)
    if n < k:
        return rng.multinomial(n, w)
    counts = np.maximum(1, np.floor(w * n)).astype(np.int64)
    rest = n - counts.sum()
    if rest > 0:
        counts += rng.multinomial(rest, w)
    while counts.sum() > n:  # only when the floor of 1 overshoots: take from the biggest
        counts[np.argmax(counts)] -= 1
    return counts


def isoforms_per_gene(rng: np.random.Generator, n_genes: int, n_isoforms: int) -> np.ndarray:
    """1 + negative binomial (long tail), then nudged to the exact total `n_isoforms`."""
    if n_isoforms < n_genes:
        raise ValueError("need at least one isoform per gene")
    mean_extra = n_isoforms / n_genes - 1
    counts = 1 + (rng.negative_binomial(ISO_PER_GENE_NB_R,
                                        ISO_PER_GENE_NB_R / (ISO_PER_GENE_NB_R + mean_extra),
                                        n_genes) if mean_extra > 0 else np.zeros(n_genes, int))
    while (diff := n_isoforms - int(counts.sum())) != 0:
        if diff > 0:  # add where there are already many: keeps the tail shape
            pick = rng.choice(n_genes, size=diff, p=counts / counts.sum())
            np.add.at(counts, pick, 1)
        else:
            big = np.flatnonzero(counts > 1)
            pick = rng.choice(big, size=min(-diff, len(big)), replace=False,
                              p=counts[big] / counts[big].sum())
            counts[pick] -= 1
    return counts


def _donors(rng: np.random.Generator, tissue: np.ndarray, n_donors: int) -> np.ndarray:
    """Assign samples to donors: each donor gives each tissue at most once (when there are enough
    donors), donors differ in how many tissues they give (GTEx: median 19, max 39)."""
    propensity = rng.gamma(4.0, 1.0, n_donors)
    donor = np.empty(len(tissue), dtype=np.int64)
    for t in np.unique(tissue):
        idx = np.flatnonzero(tissue == t)
        replace = len(idx) > n_donors
        donor[idx] = rng.choice(n_donors, size=len(idx), replace=replace,
                                p=propensity / propensity.sum())
    return donor


def build_world(seed: int, n_archs4: int, n_gtex: int, n_genes: int, n_isoforms: int,
                structure: Structure | None = None) -> World:
    """Draw the fixed part of the synthetic biology (cheap: no expression matrix is built). One
    seeded stream, drawn in a fixed order section by section: the data set depends on that order.
    `structure`'s parameters come from their own stream (`raviso.synth.structure`)."""
    st = structure or Structure()
    extra = draw_structure(seed, st, n_isoforms, n_genes, len(names.TISSUES))
    sd = None if st.spectrum == 0 else extra["program_sd"]
    rng = np.random.default_rng([seed, 0])
    layout = _draw_layout(rng, n_genes, n_isoforms)
    genes = _draw_gene_model(rng, n_genes, layout["iso_counts"], st.n_programs)
    if st.platform_offset != 1.0:
        genes["archs4_shift"] = genes["archs4_shift"] * st.platform_offset
    isoforms = _draw_isoform_model(rng, n_genes, n_isoforms, layout["dominant"])
    gtex = _draw_gtex_samples(rng, n_gtex, st.n_programs, sd, extra["compendium_only"])
    archs4 = _draw_archs4_samples(rng, n_archs4, genes["tissue_emb"], st.n_programs, sd)
    opts = {} if st.is_default else {"structure": st, **extra}
    return World(**layout, isoform_order=rng.permutation(n_isoforms),
                 **{k: _f32(v) for k, v in {**genes, **isoforms}.items()}, **gtex, **archs4,
                 **opts)


def _draw_layout(rng: np.random.Generator, n_genes: int, n_isoforms: int) -> dict:
    """Names and orders. Internal gene order = alphabetical = the ARCHS4 file's order (no column
    permutation for the biggest matrix); ENSG ids are unrelated to it, as in reality."""
    symbols = sorted(names.gene_symbols(rng, n_genes))
    gene_ids = names.ensembl_ids(rng, "ENSG", n_genes)
    gene_ids = [gene_ids[i] for i in rng.permutation(n_genes)]
    counts = isoforms_per_gene(rng, n_genes, n_isoforms)
    iso_ids = names.ensembl_ids(rng, "ENST", n_isoforms)
    iso_ids = [iso_ids[i] for i in rng.permutation(n_isoforms)]  # ENST not sorted within genes
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    dominant = np.zeros(n_isoforms, bool)
    dominant[starts + (rng.random(n_genes) * counts).astype(np.int64)] = True
    gtex_order = rng.permutation(n_genes)
    while n_genes > 1 and np.array_equal(gtex_order, np.arange(n_genes)):
        gtex_order = rng.permutation(n_genes)
    return dict(gene_symbols=symbols, gene_ids=gene_ids, isoform_ids=iso_ids,
                iso_gene=np.repeat(np.arange(n_genes), counts), iso_starts=starts,
                iso_counts=counts, dominant=dominant, gtex_gene_order=gtex_order)


def _draw_gene_model(rng: np.random.Generator, n_genes: int, counts: np.ndarray,
                     n_programs: int = N_PROGRAMS) -> dict:
    """Tissue embedding (shared within organ group) -> tanh layer -> genes."""
    n_t = len(names.TISSUES)
    groups = names.tissue_groups()
    group_emb = rng.normal(0, 1.3, (groups.max() + 1, TISSUE_DIM))
    tissue_emb = group_emb[groups] + rng.normal(0, 0.5, (n_t, TISSUE_DIM))
    d_in = TISSUE_DIM + n_programs
    w1 = rng.normal(0, 1.6 / np.sqrt(d_in), (d_in, HIDDEN))
    b1 = rng.normal(0, 0.5, HIDDEN)
    amp = rng.lognormal(np.log(0.6), 0.6, n_genes)  # some genes vary far more (tissue-specific)
    w2 = rng.normal(0, 1 / np.sqrt(HIDDEN), (HIDDEN, n_genes)) * amp
    # genes with many annotated isoforms tend to be the well-expressed ones
    gene_mu = rng.normal(GENE_LOG2_MEAN, GENE_LOG2_SD, n_genes) + ISO_COUNT_LEVEL * np.log2(counts)
    archs4_shift = rng.normal(0, 0.6, n_genes)
    p_off = GENE_OFF_MAX / (1 + np.exp(gene_mu - GENE_OFF_LEVEL))
    gene_on = rng.random((n_t, n_genes)) >= p_off
    return dict(tissue_emb=tissue_emb, w1=w1, b1=b1, w2=w2, gene_mu=gene_mu,
                archs4_shift=archs4_shift, gene_on=gene_on)


def _draw_isoform_model(rng: np.random.Generator, n_genes: int, n_isoforms: int,
                        dominant: np.ndarray) -> dict:
    """Per-isoform base share, tissue, latent and donor effects; weak minor isoforms may be off."""
    n_t = len(names.TISSUES)
    groups = names.tissue_groups()
    base = rng.normal(0.0, 1.0, n_isoforms)
    base[dominant] = rng.uniform(1.0, 4.0, n_genes)
    iso_tissue = (rng.normal(0, 0.6, (groups.max() + 1, n_isoforms))[groups]
                  + rng.normal(0, 0.4, (n_t, n_isoforms)))
    iso_latent = rng.normal(0, 0.7 / np.sqrt(HIDDEN), (HIDDEN, n_isoforms))
    iso_latent *= rng.lognormal(0, 0.5, n_isoforms)
    iso_donor = rng.normal(0, 0.25, (4, n_isoforms))
    # only weak minor isoforms switch off by tissue (strong ones switching would swamp the variance)
    weak = ~dominant & (base < np.median(base[~dominant]))
    iso_on = (rng.random((n_t, n_isoforms)) >= P_OFF_WEAK) | ~weak
    iso_scale = rng.lognormal(0, 0.15, n_genes)
    return dict(iso_base=base, iso_tissue=iso_tissue, iso_latent=iso_latent,
                iso_donor=iso_donor, iso_on=iso_on, iso_scale=iso_scale)


def _draw_gtex_samples(rng: np.random.Generator, n_gtex: int, n_programs: int = N_PROGRAMS,
                       sd=None, compendium_only=None) -> dict:
    """Tissues of very unequal size, donors giving several tissues; rows sorted by sample id."""
    n_t = len(names.TISSUES)
    tcount = drop_tissues(rng, tissue_counts(rng, n_gtex), compendium_only)
    tissue = rng.permutation(np.repeat(np.arange(n_t), tcount))
    n_donors = max(2, int(round(n_gtex / 18.3)))
    donor = _donors(rng, tissue, n_donors)
    donor_names = names.donor_ids(rng, n_donors)
    donor_z = rng.normal(0, 1, (n_donors, n_programs))
    z = 0.6 * donor_z[donor] + 0.8 * rng.normal(0, 1, (n_gtex, n_programs))
    if sd is not None:
        z *= sd
    ids = names.gtex_sample_ids(rng, donor_names, donor, tissue)
    order = np.argsort(np.array(ids, dtype=object), kind="stable")  # real files: sorted by id
    return dict(gtex_ids=[ids[i] for i in order], gtex_tissue=tissue[order],
                gtex_donor=donor[order], gtex_z=_f32(z[order]),
                gtex_depth=_f32(rng.lognormal(0, 0.4, n_gtex)),
                donor_q=_f32(rng.normal(0, 1, (n_donors, 4))))


def _draw_archs4_samples(rng: np.random.Generator, n_archs4: int, tissue_emb: np.ndarray,
                         n_programs: int = N_PROGRAMS, sd=None) -> dict:
    """ARCHS4's own distribution: flatter tissue mix, mixtures, off-manifold states."""
    n_t = len(names.TISSUES)
    primary = rng.choice(n_t, size=n_archs4, p=(w := names.TISSUE_WEIGHTS ** 0.3) / w.sum())
    mix = np.zeros((n_archs4, n_t))
    mix[np.arange(n_archs4), primary] = 1.0
    blended = rng.random(n_archs4) < 0.35
    mix[blended] = 0.5 * mix[blended] + 0.5 * rng.dirichlet(np.full(n_t, 0.1), blended.sum())
    archs4_emb = mix @ tissue_emb + rng.normal(0, 0.5, (n_archs4, TISSUE_DIM))
    archs4_z = rng.normal(0.3, 1.3, (n_archs4, n_programs))
    if sd is not None:
        archs4_z *= sd
    archs4_ids = names.geo_sample_ids(rng, n_archs4)
    return dict(archs4_ids=archs4_ids, archs4_emb=_f32(archs4_emb), archs4_mix=_f32(mix),
                archs4_z=_f32(archs4_z), archs4_depth=_f32(rng.lognormal(0, 0.8, n_archs4)))


# -- blocks of expression ------------------------------------------------------------------------

def true_gene_tpm(world: World, emb: np.ndarray, z: np.ndarray, on: np.ndarray,
                   rng: np.random.Generator,
                   shift: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(hidden state h, true gene TPM) for a block of samples; TPM rows sum to the same total."""
    h = np.tanh(np.concatenate([emb, z], axis=1) @ world.w1 + world.b1)
    x = h @ world.w2
    x += world.gene_mu
    if shift is not None:
        x += shift
    x += BIO_SD * rng.standard_normal(x.shape, dtype=np.float32)
    x -= x.max(axis=1, keepdims=True)  # no overflow in exp2
    tpm = np.exp2(x, out=x)
    tpm *= on
    tpm *= (TPM_PER_GENE * world.n_genes / tpm.sum(axis=1, dtype=np.float64)).astype(
        np.float32)[:, None]
    return h, tpm


def measure(tpm: np.ndarray, depth: np.ndarray, m: Measurement,
            rng: np.random.Generator) -> np.ndarray:
    """Observed log2(TPM+1) of a true TPM block (rows = samples, depth = per-sample multiplier)."""
    lam = tpm * (m.depth * depth)[:, None]
    sd = np.sqrt(lam + 1, dtype=np.float32)
    np.divide(m.sd_low, sd, out=sd)
    sd += m.sd_floor
    noise = rng.standard_normal(tpm.shape, dtype=np.float32)
    noise *= sd
    obs = np.exp2(noise, out=noise)
    obs *= tpm
    detected = rng.standard_exponential(tpm.shape, dtype=np.float32) < lam  # P(miss) = e^-lam
    obs *= detected
    if m.round_tpm:
        np.round(obs, 2, out=obs)
    return _log2p1(obs)


def _log2p1(x: np.ndarray) -> np.ndarray:
    """log2(x + 1) in place (one temporary fewer than the expression)."""
    x += 1
    return np.log2(x, out=x)


def archs4_block(world: World, rows: slice, rng: np.random.Generator) -> np.ndarray:
    """ARCHS4 gene matrix rows (the internal gene order is the ARCHS4 file's)."""
    _, tpm = true_gene_tpm(world, world.archs4_emb[rows], world.archs4_z[rows],
                            world.archs4_mix[rows] @ world.gene_on, rng, world.archs4_shift)
    return measure(tpm, world.archs4_depth[rows], ARCHS4_GENE, rng)


def segment_softmax(logits: np.ndarray, starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Softmax over each gene's isoforms (contiguous column segments), in place. The logits are
    O(10), so clipping replaces the usual max subtraction (a third of the cost)."""
    np.clip(logits, -40, 40, out=logits)
    np.exp(logits, out=logits)
    logits /= np.repeat(np.add.reduceat(logits, starts, axis=1), counts, axis=1)
    return logits


def gtex_block(world: World, rows: slice, rng: np.random.Generator,
               heldout=None) -> tuple[np.ndarray, ...]:
    """(gene observed, isoform observed, isoform truth) rows, each in its file's column order;
    with `heldout` (a `raviso.synth.heldout.HeldoutDonor` of this world) also the held-out-donor
    expectation of the observed isoforms (no random draws: the other three are unchanged by it)."""
    tissue = world.gtex_tissue[rows]
    h, gene_tpm = true_gene_tpm(world, world.tissue_emb[tissue], world.gtex_z[rows],
                                 world.gene_on[tissue], rng, None)
    depth = world.gtex_depth[rows]

    logits = h @ world.iso_latent
    logits += world.iso_base
    logits += world.iso_tissue[tissue]
    if world.iso_weak is not None:      # usage driven by the weakest programs, at unit variance
        z = world.gtex_z[rows][:, world.weak_idx] / world.program_sd[world.weak_idx]
        logits += (z @ world.iso_weak).astype(np.float32)
    scale = (gene_tpm * world.iso_scale)[:, world.iso_gene]
    held = None if heldout is None else heldout(logits, tissue, scale, depth)
    logits += world.donor_q[world.gtex_donor[rows]] @ world.iso_donor
    share = segment_softmax(logits, world.iso_starts, world.iso_counts)
    share *= world.iso_on[tissue]
    iso_tpm = share
    iso_tpm *= scale

    iso_tpm = iso_tpm[:, world.isoform_order]  # file order from here on
    iso_obs = measure(iso_tpm, depth, GTEX_ISOFORM, rng)
    truth = _log2p1(iso_tpm)
    if world.gene_extra_tissue is not None:    # quantified separately: counts beyond isoforms
        own = rng.standard_normal(gene_tpm.shape, dtype=np.float32) * np.float32(
            world.structure.gene_extra / 2)
        gene_tpm = gene_tpm * np.exp2(world.gene_extra_tissue[tissue] + own).astype(np.float32)
    gene_obs = measure(gene_tpm, depth, GTEX_GENE, rng)
    out = (gene_obs[:, world.gtex_gene_order], iso_obs, truth)
    return out if held is None else out + (held[:, world.isoform_order],)
