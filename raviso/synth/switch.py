"""The ``switch`` generator family: isoform usage switched by regulator genes, not a softmax.

Why a second family: the ``share`` family (`raviso.synth.world`) makes isoform shares a softmax
whose logits are linear in the hidden state plus tissue effects, which is exactly `share_net`'s
form; figures on it favour that model by construction. Here the same samples and genes (the
share family's world: tissues, donors, programs, gene model, ARCHS4) drive isoforms differently:

- each multi-isoform gene has two usage profiles, P0 (its tissue-dependent base shares, dominant
  isoform high) and P1 (the same with another isoform dominant), and its share vector is the
  MIXTURE ``(1 - u) P0 + u P1`` (not a softmax of anything);
- ``u`` is a sharp sigmoid of a regulator gene's log2(TPM+1) (the scale the gene files hold)
  around a threshold at a quantile of that regulator's GTEx distribution, width 0.1-0.3 log2;
- tissue x state interactions: in some organ groups a gene's switch is inverted, and for half
  of the genes, in some organ groups, it needs a second regulator on too (an AND gate);
- the donor shifts every threshold a little (``donor_q @ donor_shift``: the unseen-donor part);
- weak minor isoforms are off in some tissues (the share family's ``iso_on``).
Measurement: with ``gene_from="isoforms"`` (the family's default) the GTEx gene value is
log2(sum of the gene's measured isoform TPM + 1), as after `raviso import` of salmon/RSEM;
otherwise genes are measured independently as in the share family.

The held-out-donor expectation is computed as in `raviso.synth.heldout` (cubature over a fresh
donor, the tabulated measurement mean), by `SwitchHeldout`. It does not condition on the measured
gene, so with ``gene_from="isoforms"`` (where the gene carries its isoforms' measurement noise) it
is a REFERENCE, not a bound: a model that sees the gene can beat it (docs/generators.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import names, world as model
from .heldout import ObservedMean, cubature_points

WIDTH_RANGE = (0.1, 0.3)        # sigmoid width, log2 units: sharp switches
THRESHOLD_QUANTILES = (0.2, 0.8)
P_INVERTED = 0.3                # per (organ group, gene): the switch runs the other way
P_GATED_GENE = 0.5              # genes with an AND gate on a second regulator ...
P_GATE_GROUP = 0.5              # ... in this share of organ groups
DONOR_SHIFT_SD = 0.3            # log2 shift of the thresholds per unit of donor_q
PROFILE_SHARPNESS = 1.3         # logit scale: dominant shares as the share family's (~0.6)
PILOT_ROWS = 400                # GTEx rows that place the thresholds
GENE_FROM = ("independent", "isoforms")


@dataclass
class SwitchWorld:
    """The share family's `World` plus the switch parameters (all per internal gene/isoform)."""

    base: model.World
    reg: np.ndarray               # (2, G) regulator gene of each gene's switch and gate
    threshold: np.ndarray         # (2, G) log2(TPM+1)
    width: np.ndarray             # (2, G)
    polarity: np.ndarray          # (groups, G) +1 / -1
    gated: np.ndarray             # (groups, G) float 0/1: the AND gate is active there
    donor_shift: np.ndarray       # (4, G)
    alt_logit: np.ndarray         # (I,) P1's base logits (another isoform dominant)
    group: np.ndarray             # (54,) organ group of each tissue


def build_switch_world(seed: int, n_archs4: int, n_gtex: int, n_genes: int,
                       n_isoforms: int) -> SwitchWorld:
    """The share family's world for `seed` plus switch parameters from their own stream."""
    w = model.build_world(seed, n_archs4, n_gtex, n_genes, n_isoforms)
    rng = np.random.default_rng([seed, 3])
    rows = slice(0, min(PILOT_ROWS, len(w.gtex_ids)))
    tissue = w.gtex_tissue[rows]
    _, tpm = model.true_gene_tpm(w, w.tissue_emb[tissue], w.gtex_z[rows], w.gene_on[tissue],
                                 np.random.default_rng([seed, 4]), None)
    level = np.log2(tpm.astype(np.float64) + 1)
    sd = level.std(axis=0)
    varied = np.flatnonzero(sd >= np.median(sd))       # regulators: the more variable half
    reg = rng.choice(varied, size=(2, n_genes))
    q = rng.uniform(*THRESHOLD_QUANTILES, size=(2, n_genes))
    threshold = np.array([[np.quantile(level[:, r], qq) for r, qq in zip(reg[k], q[k])]
                          for k in range(2)])
    groups = names.tissue_groups()
    n_groups = groups.max() + 1
    polarity = np.where(rng.random((n_groups, n_genes)) < P_INVERTED, -1.0, 1.0)
    gated = ((rng.random(n_genes) < P_GATED_GENE)[None, :]
             & (rng.random((n_groups, n_genes)) < P_GATE_GROUP))
    alt = w.iso_base.copy()
    for g in np.flatnonzero(w.iso_counts > 1):        # move dominance to another isoform
        s, c = w.iso_starts[g], w.iso_counts[g]
        dom = s + int(np.argmax(w.iso_base[s:s + c]))
        other = s + (dom - s + 1 + int(rng.integers(c - 1))) % c
        alt[dom], alt[other] = alt[other], alt[dom]
    return SwitchWorld(base=w, reg=reg, threshold=threshold.astype(np.float32),
                       width=rng.uniform(*WIDTH_RANGE, size=(2, n_genes)).astype(np.float32),
                       polarity=polarity.astype(np.float32), gated=gated.astype(np.float32),
                       donor_shift=rng.normal(0, DONOR_SHIFT_SD, (4, n_genes)).astype(np.float32),
                       alt_logit=alt.astype(np.float32), group=groups)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -40, 40)))


def switch_state(sw: SwitchWorld, level: np.ndarray, tissue: np.ndarray,
                 shift: np.ndarray) -> np.ndarray:
    """(n, G) u in [0, 1]: the weight of each gene's second profile. ``level``: (n, G) true
    log2(TPM+1) of the genes; ``shift``: (n, G) the donor's threshold shift."""
    grp = sw.group[tissue]
    a = (level[:, sw.reg[0]] - sw.threshold[0] - shift) / sw.width[0]
    u = _sigmoid(sw.polarity[grp] * a)
    gate = _sigmoid((level[:, sw.reg[1]] - sw.threshold[1] - shift) / sw.width[1])
    g = sw.gated[grp]
    return u * (1 - g + g * gate)


def isoform_tpm(sw: SwitchWorld, profiles: tuple, u: np.ndarray, tissue: np.ndarray,
                gene_tpm: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """(n, I) true isoform TPM in internal order from the two profiles' shares and u."""
    w = sw.base
    ui = u[:, w.iso_gene]
    share = profiles[0] * (1 - ui)
    share += profiles[1] * ui
    share *= w.iso_on[tissue]
    share *= (gene_tpm * scale)[:, w.iso_gene]
    return share


def profiles(sw: SwitchWorld, tissue: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(P0, P1): each gene's two share vectors for the samples' tissues, (n, I) each."""
    w = sw.base
    t_eff = w.iso_tissue[tissue]
    k = np.float32(PROFILE_SHARPNESS)
    p0 = model.segment_softmax(k * (t_eff + w.iso_base), w.iso_starts, w.iso_counts)
    p1 = model.segment_softmax(k * (t_eff + sw.alt_logit), w.iso_starts, w.iso_counts)
    return p0, p1


def genes_from_isoforms(w: model.World, iso_obs: np.ndarray) -> np.ndarray:
    """(n, G) log2(sum of each gene's measured isoform TPM + 1), genes in the GTEx file's order;
    ``iso_obs`` in the isoform file's order."""
    internal = np.empty_like(iso_obs, dtype=np.float64)
    internal[:, w.isoform_order] = np.exp2(iso_obs.astype(np.float64)) - 1.0
    gene = np.add.reduceat(internal, w.iso_starts, axis=1)
    return np.log2(gene + 1.0).astype(np.float32)[:, w.gtex_gene_order]


def gtex_block(sw: SwitchWorld, rows: slice, rng: np.random.Generator, heldout=None,
               gene_from: str = "isoforms") -> tuple[np.ndarray, ...]:
    """As `raviso.synth.world.gtex_block`, for the switch family (genes measured independently;
    `from_isoforms` makes them sums; `gene_from` only picks the isoforms' TPM scale)."""
    w = sw.base
    tissue = w.gtex_tissue[rows]
    _, gene_tpm = model.true_gene_tpm(w, w.tissue_emb[tissue], w.gtex_z[rows],
                                      w.gene_on[tissue], rng, None)
    depth = w.gtex_depth[rows]
    level = np.log2(gene_tpm + 1)
    scale = np.ones(w.n_genes, np.float32) if gene_from == "isoforms" else w.iso_scale
    prof = profiles(sw, tissue)
    held = None if heldout is None else heldout(level, tissue, prof, gene_tpm, scale, depth)
    shift = w.donor_q[w.gtex_donor[rows]] @ sw.donor_shift
    iso_tpm = isoform_tpm(sw, prof, switch_state(sw, level, tissue, shift), tissue, gene_tpm,
                          scale)[:, w.isoform_order]
    iso_obs = model.measure(iso_tpm, depth, model.GTEX_ISOFORM, rng)
    truth = np.log2(iso_tpm + 1)
    gene_obs = model.measure(gene_tpm, depth, model.GTEX_GENE, rng)[:, w.gtex_gene_order]
    out = (gene_obs, iso_obs, truth)
    return out if held is None else out + (held[:, w.isoform_order],)


def from_isoforms(w: model.World, blocks: tuple) -> tuple:
    """A GTEx block (gene, isoform, truth[, held-out]) with the genes replaced by the sum of
    their measured isoforms; a one-isoform gene's held-out expectation becomes its measured value
    (the gene shows it exactly)."""
    out = (genes_from_isoforms(w, blocks[1]),) + tuple(blocks[1:])
    if len(blocks) > 3:
        single = (w.iso_counts[w.iso_gene] == 1)[w.isoform_order]
        out[3][:, single] = blocks[1][:, single]
    return out


class SwitchHeldout:
    """E[observed GTEx isoforms | the sample's own state, a fresh donor] for the switch family."""

    def __init__(self, sw: SwitchWorld):
        self.sw = sw
        self.obs_mean = ObservedMean.build(model.GTEX_ISOFORM, sw.base.gtex_depth)
        self.points = cubature_points(sw.donor_shift.shape[0])

    def __call__(self, level, tissue, prof, gene_tpm, scale, depth) -> np.ndarray:
        """(n, I) float32 in the INTERNAL isoform order."""
        rows = self.obs_mean.rows(depth)
        acc = np.zeros(prof[0].shape, np.float32)
        for q in self.points:
            u = switch_state(self.sw, level, tissue, np.broadcast_to(q @ self.sw.donor_shift,
                                                                     level.shape))
            acc += self.obs_mean(isoform_tpm(self.sw, prof, u, tissue, gene_tpm, scale), rows)
        acc /= len(self.points)
        return acc
