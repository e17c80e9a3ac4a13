"""The training step's optional paths on CPU: torch.compile against eager, bf16 autocast with fp32
master weights, the GPU batch and its scaled learning rate, and the GPU benchmark's phase split."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from raviso.core.config import OptionError
from raviso.models.vae.loop import (CompiledParts, amp_dtype, compile_wanted, make_optimizer,
                                master_dtypes, train_epoch)
from raviso.models.vae.model import VAE, VAEConfig
from raviso.train.config import TrainConfig

ROOT = Path(__file__).resolve().parents[2]
GENES = 24


def _can_compile() -> bool:
    try:
        return bool(torch.compile(lambda t: t * 2 + 1)(torch.ones(3)).eq(3).all())
    except Exception:       # noqa: BLE001 (no C compiler, no inductor backend)
        return False


def _run(steps=3, amp="off", compiled=False, seed=0):
    """Per-step training losses of a tiny VAE, and the model and optimizer after them."""
    torch.manual_seed(seed)
    model = VAE(VAEConfig(n_genes=GENES, hidden=(16, 8), latent_dim=3))
    opt = make_optimizer(model, 1e-2)
    parts = CompiledParts(model) if compiled else None
    data = torch.rand(steps, 32, GENES, generator=torch.Generator().manual_seed(1)) * 4
    losses = [train_epoch(model, opt, [x], 0.5, amp=amp, compiled=parts).loss for x in data]
    return losses, model, opt, parts


@pytest.mark.skipif(not _can_compile(), reason="torch.compile cannot run on this machine")
def test_compiled_step_gives_the_eager_losses():
    eager, *_ = _run()
    compiled, _, _, parts = _run(compiled=True)
    assert parts.active            # compiled for real, no fallback
    assert compiled == pytest.approx(eager, abs=1e-5, rel=0)


def test_failed_compilation_trains_eagerly_with_one_warning(monkeypatch):
    def broken(fn):
        def call(*a, **kw):
            raise RuntimeError("backend compiler failed\nmore detail")
        return call

    eager, *_ = _run()
    monkeypatch.setattr(torch, "compile", broken)
    with pytest.warns(RuntimeWarning, match="torch.compile failed") as seen:
        losses, model, _, parts = _run(compiled=True)
    assert len(seen) == 1 and "\n" not in str(seen[0].message)
    assert not parts.active and "forward" not in model.encoder.__dict__
    assert losses == eager         # the failed step is redone eagerly on the same noise


def test_bf16_autocast_keeps_fp32_master_weights_and_adam_state():
    fp32, *_ = _run(amp="off")
    bf16, model, opt, _ = _run(amp="bf16")
    assert master_dtypes(model, opt) == {torch.float32}
    assert opt.state and all(s["exp_avg"].dtype == torch.float32 for s in opt.state.values())
    assert bf16 != fp32                                  # the matmuls did run in bfloat16
    assert bf16 == pytest.approx(fp32, rel=2e-2)


def test_auto_settings_leave_the_cpu_step_unchanged():
    assert amp_dtype("auto", "cpu") is None and amp_dtype("auto", "cuda") is torch.bfloat16
    assert amp_dtype("bf16", "cpu") is torch.bfloat16 and amp_dtype("off", "cuda") is None
    assert not compile_wanted("auto", "cpu") and compile_wanted("auto", "cuda")
    assert compile_wanted("on", "cpu") and not compile_wanted("off", "cuda")
    auto, m1, *_ = _run(amp="auto")
    off, m2, *_ = _run(amp="off")
    assert auto == off
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(),
                                                 m2.state_dict().values()))


def test_gpu_batch_scales_the_learning_rate_by_its_square_root():
    tc = TrainConfig()
    assert (tc.batch_size, tc.gpu_batch_size, tc.amp, tc.compile) == (64, 4096, "auto", "auto")
    assert tc.batch_and_lr("cpu") == (64, 1e-4)
    batch, lr = tc.batch_and_lr("cuda")
    assert batch == 4096 and lr == pytest.approx(8e-4, rel=1e-12)       # 1e-4 x sqrt(64)
    tc = TrainConfig(batch_size=128, lr=3e-4, gpu_batch_size=512)
    assert tc.batch_and_lr("cuda") == (512, pytest.approx(6e-4, rel=1e-12))
    assert TrainConfig(gpu_batch_size=0).batch_and_lr("cuda") == (64, 1e-4)
    assert TrainConfig(gpu_batch_size=64).batch_and_lr("cuda") == (64, 1e-4)
    assert math.isclose(TrainConfig(gpu_batch_size=16).batch_and_lr("cuda")[1], 5e-5)


@pytest.mark.parametrize("field, value", [("amp", "fp8"), ("compile", "yes"),
                                          ("gpu_batch_size", -1)])
def test_bad_step_options_are_refused(field, value):
    with pytest.raises(OptionError, match=field):
        TrainConfig(**{field: value})


def test_gpu_bench_dry_run_reports_where_the_step_time_goes():
    out = subprocess.run([sys.executable, "-m", "bench.gpu", "--device", "cpu",
                          "--skip", "ingest,cv", "--vae-steps", "2"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300, check=True).stdout
    res = json.loads(out.strip().splitlines()[-1])
    phases = ("fetch", "fwd_bwd", "optimizer")
    assert all(res[f"vae_{p}_ms"] > 0 for p in phases)
    assert sum(res[f"vae_{p}_share"] for p in phases) == pytest.approx(1, abs=2e-3)
    assert 0 < res["vae_gemm_bound_of_fwd_bwd"] and 0 < res["vae_mfu"]
    assert res["vae_master_dtypes"] == ["float32"] and res["vae_amp"] == "off"
    assert "fwd+bwd" in out
