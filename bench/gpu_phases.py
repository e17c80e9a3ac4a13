"""Where a benchmarked training step's time goes: batch fetch, forward+backward (the GEMMs) and
optimizer.step, timed with CUDA events on a GPU (no sync inside the loop) or the wall clock on
CPU, and the GEMM bound of the step at a peak FLOP rate (bench/gpu.py's VAE phase)."""

from __future__ import annotations

import time

import torch


class PhaseClock:
    """Where a step's time goes: CUDA events (no sync inside the loop) or, on CPU, the wall clock
    around batch fetch, forward+backward (the GEMMs) and optimizer.step; per-step means in ms."""

    PHASES = ("fetch", "fwd_bwd", "optimizer")

    def __init__(self, device):
        self.cuda = device.type == "cuda"
        self.marks = []

    def mark(self):
        if self.cuda:
            e = torch.cuda.Event(enable_timing=True)
            e.record()
            return e
        return time.perf_counter()

    def step(self, marks) -> None:
        self.marks.append(marks)

    def ms(self) -> dict:
        if self.cuda:
            torch.cuda.synchronize()
            span = lambda a, b: a.elapsed_time(b)  # noqa: E731
        else:
            span = lambda a, b: (b - a) * 1e3  # noqa: E731
        n = max(1, len(self.marks))
        return {ph: sum(span(m[i], m[i + 1]) for m in self.marks) / n
                for i, ph in enumerate(self.PHASES)}


def phase_keys(pre: str, r: dict, batch: int, peak: float) -> dict:
    """Per-step ms of each phase, its share of the step, and the GEMM bound (6 x params x batch
    FLOP at the peak rate) as a fraction of the forward+backward time."""
    ms = r["phase_ms"]
    total = sum(ms.values()) or 1.0
    out = {f"{pre}_{ph}_ms": round(v, 4) for ph, v in ms.items()}
    out.update({f"{pre}_{ph}_share": round(v / total, 4) for ph, v in ms.items()})
    bound_ms = 6 * r["params"] * batch / (peak * 1e12) * 1e3
    out[f"{pre}_gemm_bound_ms"] = round(bound_ms, 4)
    out[f"{pre}_gemm_bound_of_fwd_bwd"] = round(bound_ms / ms["fwd_bwd"], 4) if ms["fwd_bwd"] else None
    return out
