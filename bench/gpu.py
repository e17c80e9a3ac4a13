"""The GPU figures of issue 11 (run by bench/gpu.sh): paper-VAE training steps and a 2-fold CV at
GTEx width on ONE device, with samples/s, MFU and peak device memory. Last line: one JSON object.

What runs, on ``--device cuda`` (the real benchmark) or ``--device cpu`` (a dry run at toy sizes
that exercises exactly the same code; the test suite runs it):

1. VAE steps: the paper's 177.8M-parameter VAE (18,965 -> 4096-2048-1024-512 -> 256), fused Adam,
   batch 512, bf16 autocast on CUDA, the batch data device-resident (a (rows, genes) tensor
   uploaded once, batches gathered on the device: no host->device copy per step). Reports
   samples/s after warm-up, MFU = 6 x params x samples/s / peak bf16 FLOP/s (H100/H200 SXM dense:
   989 TFLOP/s; ``--peak-tflops`` to change; on CPU the peak is a measured float32 GEMM rate).
2. CV: folds 0 and 1 of a 2-fold split of a synthetic labelled set at GTEx width (17,356 samples,
   156,958 isoforms; 256-d latent features), the paper's latent FFNN (256 -> 32 -> 156,958) trained
   with bf16 autocast; targets stored float16 (raviso's at-scale target storage) and resident on
   the device when they fit (5.45 GB), else gathered into a pinned host buffer and copied
   asynchronously. Reports training samples/s per fold, the fold's validation MSE against the mean
   baseline, and the whole phase's wall time.

Peak device memory is `torch.cuda.max_memory_allocated` (0 on CPU).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

H100_BF16_TFLOPS = 989.0


def gemm_tflops(device: torch.device) -> float:
    n = 2048 if device.type == "cuda" else 512
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    best = float("inf")
    for _ in range(5):
        sync(device)
        t = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e12


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def autocast(device: torch.device):
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16,
                          enabled=device.type == "cuda")


def vae_steps(device, genes: int, hidden, batch: int, steps: int, warmup: int) -> dict:
    from raviso.models.loop import make_optimizer
    from raviso.models.vae import VAE, VAEConfig

    torch.manual_seed(0)
    model = VAE(VAEConfig(n_genes=genes, hidden=tuple(hidden))).to(device)
    params = sum(p.numel() for p in model.parameters())
    opt = make_optimizer(model, 1e-4)
    data = (torch.rand(batch * 4, genes, device=device) * 5)      # device-resident
    gen = torch.Generator(device=device).manual_seed(0)
    t0 = None
    for i in range(warmup + steps):
        if i == warmup:
            sync(device)
            t0 = time.perf_counter()
        x = data[torch.randint(0, data.shape[0], (batch,), device=device, generator=gen)]
        with autocast(device):
            rec = model(x)
        opt.zero_grad(set_to_none=True)
        rec.loss.backward()
        opt.step()
    sync(device)
    rate = steps * batch / (time.perf_counter() - t0)
    return {"vae_params": params, "vae_batch": batch, "vae_steps": steps,
            "vae_samples_per_s": round(rate, 1),
            "vae_model_tflops": round(6 * params * rate / 1e12, 6)}


def cv_folds(device, n: int, isoforms: int, latent: int, epochs: int, batch: int) -> dict:
    """2-fold CV of the latent FFNN at width; targets float16, device-resident when they fit."""
    from raviso.models.loop import make_optimizer
    from raviso.models.regressors import FFNN

    rng = np.random.default_rng(0)
    Z = rng.normal(size=(n, latent)).astype(np.float32)
    W = rng.normal(0, 0.3, (latent, 8)).astype(np.float32)
    Y = np.empty((n, isoforms), np.float16)
    proj = rng.normal(0, 0.5, (8, isoforms)).astype(np.float32)
    for s in range(0, n, 1024):             # low-rank signal + noise, log-like range
        h = Z[s:s + 1024] @ W
        Y[s:s + 1024] = np.clip(2 + h @ proj + rng.normal(0, 0.5, (len(h), isoforms)), 0, None)
    fold = np.arange(n) % 2
    resident = device.type == "cuda" and Y.nbytes < 0.5 * torch.cuda.mem_get_info()[0]
    Yd = torch.from_numpy(Y).to(device) if resident else None
    pinned = None if resident else torch.empty((batch, isoforms), dtype=torch.float16,
                                               pin_memory=device.type == "cuda")
    Zd = torch.from_numpy(Z).to(device)
    out, trained, t_all = [], 0, time.perf_counter()
    for f in (0, 1):
        tr = torch.from_numpy(np.flatnonzero(fold != f))
        va = torch.from_numpy(np.flatnonzero(fold == f))
        torch.manual_seed(f)
        model = FFNN(latent, (32,), isoforms).to(device)
        with torch.no_grad():
            mean = (Yd[tr.to(device)].float().mean(0) if resident
                    else torch.from_numpy(Y[tr.numpy()].astype(np.float32).mean(0)).to(device))
            model.net[-1].bias.copy_(mean)
        opt = make_optimizer(model, 1e-3)
        sync(device)
        t = time.perf_counter()
        for _ in range(epochs):
            perm = tr[torch.randperm(len(tr))]
            for s in range(0, len(perm), batch):
                idx = perm[s:s + batch]
                if resident:
                    y = Yd[idx.to(device)].float()
                else:
                    np.take(Y, idx.numpy(), axis=0, out=pinned[:len(idx)].numpy())
                    y = pinned[:len(idx)].to(device, non_blocking=True).float()
                with autocast(device):
                    loss = torch.nn.functional.mse_loss(model(Zd[idx.to(device)]).float(), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        sync(device)
        secs = time.perf_counter() - t
        trained += epochs * len(tr)
        with torch.no_grad(), autocast(device):
            se = base = 0.0
            for s in range(0, len(va), 1024):
                idx = va[s:s + 1024]
                y = (Yd[idx.to(device)] if resident
                     else torch.from_numpy(Y[idx.numpy()]).to(device)).float()
                se += float(((model(Zd[idx.to(device)]).float() - y) ** 2).sum())
                base += float(((mean - y) ** 2).sum())
        out.append({"fold": f, "train_seconds": round(secs, 3),
                    "samples_per_s": round(epochs * len(tr) / secs, 1),
                    "mse": se / (len(va) * isoforms), "mse_mean_baseline": base / (len(va) * isoforms)})
    wall = time.perf_counter() - t_all
    return {"cv_folds": 2, "cv_rows": n, "cv_isoforms": isoforms, "cv_epochs": epochs,
            "cv_targets_resident": bool(resident), "cv_wall_seconds": round(wall, 2),
            "cv_samples_per_s": round(sum(epochs * (n // 2) for _ in out)
                                      / sum(o["train_seconds"] for o in out), 1),
            "cv_per_fold": out}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    ap.add_argument("--peak-tflops", type=float, default=None,
                    help=f"peak bf16 dense TFLOP/s for MFU (cuda default {H100_BF16_TFLOPS})")
    ap.add_argument("--vae-steps", type=int, default=None)
    ap.add_argument("--cv-epochs", type=int, default=None)
    a = ap.parse_args(argv)
    device = torch.device(a.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench/gpu.py: error: --device cuda but torch sees no CUDA device "
                         "(run with --device cpu for the dry run)")
    dry = device.type == "cpu"
    torch.backends.cuda.matmul.allow_tf32 = True
    if dry:
        torch.set_num_threads(1)
        vae = dict(genes=512, hidden=(64, 32), batch=32, steps=a.vae_steps or 3, warmup=1)
        cv = dict(n=400, isoforms=2000, latent=16, epochs=a.cv_epochs or 1, batch=64)
    else:
        vae = dict(genes=18_965, hidden=(4096, 2048, 1024, 512), batch=512,
                   steps=a.vae_steps or 50, warmup=5)
        cv = dict(n=17_356, isoforms=156_958, latent=256, epochs=a.cv_epochs or 3, batch=256)
    res = {"bench": "gpu", "device": a.device, "dry_run": dry,
           "device_name": torch.cuda.get_device_name() if not dry else "cpu",
           "torch": torch.__version__}
    peak = a.peak_tflops or (H100_BF16_TFLOPS if not dry else gemm_tflops(device))
    res["peak_tflops"] = round(peak, 3)
    res.update(vae_steps(device, **vae))
    res["vae_mfu"] = round(res["vae_model_tflops"] / peak, 6)
    res.update(cv_folds(device, **cv))
    res["peak_gpu_memory_gb"] = (round(torch.cuda.max_memory_allocated() / 1e9, 2)
                                 if not dry else 0.0)
    print(f"VAE {res['vae_params'] / 1e6:.1f}M params, batch {vae['batch']}: "
          f"{res['vae_samples_per_s']:.0f} samples/s, MFU {res['vae_mfu']:.3f} "
          f"(peak {peak:.1f} TFLOP/s); CV 2 folds x {cv['isoforms']:,} isoforms: "
          f"{res['cv_samples_per_s']:.0f} samples/s, {res['cv_wall_seconds']:.1f} s; "
          f"peak GPU memory {res['peak_gpu_memory_gb']} GB")
    print(json.dumps(res))
    return res


if __name__ == "__main__":
    main()
