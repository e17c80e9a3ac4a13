"""The one normalisation `raviso import` applies to every sample of a store: quantifier TPM, TPM
from counts / effective length, or (no lengths) CPM, which is loudly not TPM. Mixed inputs are an
error, never a silent mix of scales."""

from __future__ import annotations

import numpy as np

from ..core.errors import RavisoError


UNITS = ("tpm", "counts")


def resolve_units(has_tpm: np.ndarray, has_counts: np.ndarray, has_len: np.ndarray,
                  units: str | None, names) -> str:
    """'tpm' (quantifier TPM), 'tpm-from-counts' (counts / effective length) or 'cpm'."""
    if units is not None and units not in UNITS:
        raise RavisoError(f"--units must be one of {', '.join(UNITS)} (got {units!r})")
    if units is None:
        if has_tpm.all():
            units = "tpm"
        elif not has_tpm.any():
            units = "counts"
        else:
            tpm_ex = names[int(np.flatnonzero(has_tpm)[0])]
            cnt_ex = names[int(np.flatnonzero(~has_tpm)[0])]
            raise RavisoError(
                f"samples mix TPM ({int(has_tpm.sum())}, e.g. {tpm_ex}) and counts-only input "
                f"({int((~has_tpm).sum())}, e.g. {cnt_ex}); counts without lengths can only "
                "become CPM, which is not on the TPM scale: pass --units counts to build every "
                "sample from its counts, or quantify all samples the same way")
    if units == "tpm":
        if not has_tpm.all():
            ex = names[int(np.flatnonzero(~has_tpm)[0])]
            raise RavisoError(f"--units tpm but {int((~has_tpm).sum())} samples give only counts "
                              f"(e.g. {ex}); pass --units counts")
        return "tpm"
    if not has_counts.all():
        ex = names[int(np.flatnonzero(~has_counts)[0])]
        raise RavisoError(f"--units counts but {int((~has_counts).sum())} samples give only TPM "
                          f"(e.g. {ex}); pass --units tpm")
    return "tpm-from-counts" if has_len.all() else "cpm"


UNITS_LABEL = {"tpm": "log2(TPM+1)", "tpm-from-counts": "log2(TPM+1)", "cpm": "log2(CPM+1)"}

UNITS_NOTE = {
    "tpm": "TPM as reported by the quantifier",
    "tpm-from-counts": "TPM computed from counts / effective length",
    "cpm": "CPM: counts per million of the sample's total counts; NO length normalisation "
           "(no effective lengths in the input), so values are not TPM",
}


def normalise(values: np.ndarray, eff_length: np.ndarray | None, mode: str) -> np.ndarray:
    """One sample's transcript values (TPM or counts) -> TPM or CPM (float64)."""
    if mode == "tpm":
        return values
    if mode == "tpm-from-counts":
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = np.where(eff_length > 0, values / eff_length, 0.0)
        total = rate.sum()
    else:
        rate, total = values, values.sum()
    return rate * (1e6 / total) if total > 0 else np.zeros_like(rate)
