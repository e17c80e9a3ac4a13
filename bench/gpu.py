"""The GPU figures (run by bench/gpu.sh; history in bench/README.md): paper-VAE training steps and a 2-fold CV at
GTEx width on ONE device, with samples/s, MFU and peak device memory. Last line: one JSON object.

What runs, on ``--device cuda`` (the real benchmark) or ``--device cpu`` (a dry run at toy sizes
that exercises exactly the same code; the test suite runs it):

1. VAE steps: the paper's 177.8M-parameter VAE (18,965 -> 4096-2048-1024-512 -> 256), fused Adam,
   batch 512, bf16 autocast and torch.compile on CUDA (``--amp``, ``--compile``: the training
   loop's own step paths), where the step's time goes (`bench.gpu_phases`), the batch data
   device-resident (a (rows, genes) tensor
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

from bench.gpu_phases import PhaseClock, phase_keys
from raviso.data.labelled import Labelled

H100_BF16_TFLOPS = 989.0


def gemm_tflops(device: torch.device, dtype=torch.float32) -> float:
    """Best of 5 timed square matrix products (8192 on CUDA, 512 on CPU), after one warm-up."""
    n = 8192 if device.type == "cuda" else 512
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
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


def vae_steps(device, genes: int, hidden, batch: int, steps: int, warmup: int,
              amp: str = "auto", compile: str = "auto") -> dict:
    """Timed VAE steps through the training loop's own step paths (`amp_dtype`,
    `CompiledParts`, fused Adam); the phase split comes from the timed steps."""
    from raviso.models.vae.loop import (CompiledParts, amp_dtype, compile_wanted, make_optimizer,
                                    master_dtypes)
    from raviso.models.vae.model import VAE, VAEConfig

    torch.manual_seed(0)
    model = VAE(VAEConfig(n_genes=genes, hidden=tuple(hidden))).to(device)
    params = sum(p.numel() for p in model.parameters())
    opt = make_optimizer(model, 1e-4)
    compiled = CompiledParts(model) if compile_wanted(compile, device.type) else None
    dtype = amp_dtype(amp, device.type)
    data = (torch.rand(batch * 4, genes, device=device) * 5)      # device-resident
    gen = torch.Generator(device=device).manual_seed(0)
    clock, t0 = PhaseClock(device), None
    for i in range(warmup + steps):
        if i == warmup:
            sync(device)
            t0 = time.perf_counter()
        m0 = clock.mark()
        x = data[torch.randint(0, data.shape[0], (batch,), device=device, generator=gen)]
        m1 = clock.mark()
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            rec = model(x)
        opt.zero_grad(set_to_none=True)
        rec.loss.backward()
        m2 = clock.mark()
        opt.step()
        if i >= warmup:
            clock.step((m0, m1, m2, clock.mark()))
    sync(device)
    rate = steps * batch / (time.perf_counter() - t0)
    return {"params": params, "samples_per_s": rate, "model_tflops": 6 * params * rate / 1e12,
            "phase_ms": clock.ms(), "compiled": bool(compiled and compiled.active),
            "amp": str(dtype).removeprefix("torch.") if dtype else "off",
            "master_dtypes": sorted(str(d).removeprefix("torch.") for d in master_dtypes(model, opt))}


def vae_phase(device, peak: float, genes: int, hidden, batches, steps: int, warmup: int,
              amp: str = "auto", compile: str = "auto") -> dict:
    """Paper-VAE training steps at each batch size; the first batch size gives the headline keys."""
    out = {}
    for k, batch in enumerate(batches):
        r = vae_steps(device, genes, hidden, batch, steps, warmup, amp, compile)
        pre = "vae" if k == 0 else f"vae_b{batch}"
        out.update({f"{pre}_batch": batch, f"{pre}_samples_per_s": round(r["samples_per_s"], 1),
                    f"{pre}_model_tflops": round(r["model_tflops"], 6),
                    f"{pre}_mfu": round(r["model_tflops"] / peak, 6),
                    **phase_keys(pre, r, batch, peak)})
        out.update(vae_params=r["params"], vae_amp=r["amp"], vae_compiled=r["compiled"],
                   vae_master_dtypes=r["master_dtypes"])
    out["vae_steps"] = steps
    return out


def synth_labelled(n: int, n_genes: int, n_iso: int, latent: int, device, seed: int = 0,
                   chunk: int = 2048) -> Labelled:
    """A labelled set at the requested width with real-data structure, generated on `device`:
    per sample a hidden state (16-d, shifted by one of 10 tissues) drives log gene levels and
    per-isoform share logits; isoform TPM = segment-softmax share x gene TPM x lognormal noise,
    and the gene value is log2 of the exact sum of its isoforms' TPM (as after `raviso import`).
    Two samples per donor; a 256-d "vae" latent = a noisy projection of the hidden state.
    Isoforms are stored float16, as raviso stores targets at course width."""
    from raviso.models.context.share_net import segment_softmax

    cpu = torch.Generator().manual_seed(seed)
    iso_gene = torch.sort(torch.randint(0, n_genes, (n_iso,), generator=cpu)).values
    rn = lambda *shape: torch.randn(*shape, generator=cpu)  # noqa: E731
    tissue = np.arange(n) % 10
    H = (rn(n, 16) + rn(10, 16)[torch.from_numpy(tissue)]).to(device)
    A, base = (0.4 * rn(16, n_genes)).to(device), (1 + 4 * torch.rand(n_genes, generator=cpu)).to(device)
    B, b = (0.3 * rn(16, n_iso)).to(device), (1.5 * rn(n_iso)).to(device)
    seg = iso_gene.to(device)
    genes = np.empty((n, n_genes), np.float32)
    isoforms = np.empty((n, n_iso), np.float16)
    gen = torch.Generator(device=device).manual_seed(seed)
    for s in range(0, n, chunk):
        h = H[s:s + chunk]
        g_log = torch.clamp(base + h @ A + 0.3 * torch.randn(len(h), n_genes, device=device,
                                                               generator=gen), min=0)
        share = segment_softmax(b + h @ B, seg, n_genes)
        tpm = share * torch.exp2(g_log)[:, seg].sub_(1) * torch.exp(
            0.3 * torch.randn(len(h), n_iso, device=device, generator=gen))
        isoforms[s:s + len(h)] = torch.log2(tpm + 1).half().cpu().numpy()
        total = torch.zeros(len(h), n_genes, device=device).index_add_(1, seg, tpm)
        genes[s:s + len(h)] = torch.log2(total + 1).cpu().numpy()
    Z = (H @ rn(16, latent).to(device) + 0.1 * torch.randn(n, latent, device=device,
                                                            generator=gen)).cpu().numpy()
    return Labelled(sample_id=np.array([f"s{i}" for i in range(n)]),
                    tissue=np.array([f"tissue{t}" for t in tissue]),
                    donor=np.array([f"d{i // 2}" for i in range(n)]),
                    genes=genes, isoforms=isoforms,
                    gene_names=[f"g{j}" for j in range(n_genes)],
                    isoform_names=[f"i{j}" for j in range(n_iso)],
                    isoform_gene=iso_gene.numpy().astype(np.int64), latent={"vae": Z})


def mse(data: Labelled, pred: np.ndarray, rows: np.ndarray, device) -> float:
    """Validation MSE, summed on `device` in float64 (a numpy pass over 8,678 x 156,958 takes
    ~20 s on one core; this is not what is being timed)."""
    total = torch.zeros((), dtype=torch.float64, device=device)
    for s in range(0, len(rows), 1024):
        d = (torch.from_numpy(pred[s:s + 1024]).to(device)
             - torch.from_numpy(data.isoforms[rows[s:s + 1024]]).to(device).float())
        total += torch.sum(d.double() ** 2)
    return float(total) / (len(rows) * data.isoforms.shape[1])


class BatchClock:
    """`on_batch` hook: training rows/s from the first to the last batch of each epoch (no
    set-up, no validation). A call comes before its batch's step, so an epoch's span holds the
    steps of all its batches but the last."""

    def __init__(self, device):
        self.device, self.epochs = device, {}

    def __call__(self, epoch, rows) -> None:
        sync(self.device)
        now = time.perf_counter()
        first, _, done, total = self.epochs.get(epoch, (now, now, 0, 0))
        self.epochs[epoch] = (first, now, total, total + len(rows))

    def rows_per_s(self) -> float:
        secs = sum(last - first for first, last, _, _ in self.epochs.values())
        rows = sum(done for _, _, done, _ in self.epochs.values())
        return rows / secs if secs > 0 else 0.0


def fold_plan(f: int, device, epochs: int, share_epochs: int, share_folds: int, only=()):
    """[(name, options)] of fold `f`: ``vae_ffnn_pinned`` is vae_ffnn with targets streamed
    from host (fold 0, CUDA only)."""
    plan = [("mean", {}), ("vae_ffnn", {"epochs": epochs, "device": device.type})]
    if f == 0 and device.type == "cuda":
        plan.append(("vae_ffnn_pinned", {"epochs": epochs, "device": device.type}))
    if f < share_folds:
        plan.append(("share_net", {"epochs": share_epochs, "device": device.type}))
    return [(v, o) for v, o in plan if not only or v in only]


def fit_one(name: str, opts: dict, data, tr, va, device, resident: float) -> dict:
    """One variant's fit and predict on one fold: its row of the CV table (or its error: one
    lease, one try, so a failing variant is reported and the rest still run)."""
    from raviso.models import training as ffnn_fit
    from raviso.models.variants import make_variant

    model = make_variant(name.removesuffix("_pinned"), **opts)
    clock = BatchClock(device)
    ffnn_fit.RESIDENT_FRACTION = 0.0 if name.endswith("_pinned") else resident
    t = time.perf_counter()
    try:
        model.fit(data, tr, **({"on_batch": clock} if name == "share_net" else {}))
        sync(device)
        fit_s = time.perf_counter() - t
        t = time.perf_counter()
        pred = model.predict(data, va)
    except Exception as e:      # noqa: BLE001
        return {"variant": name, "error": f"{type(e).__name__}: {e}"}
    finally:
        ffnn_fit.RESIDENT_FRACTION = resident
    row = {"variant": name, "fit_seconds": round(fit_s, 2),
           "predict_seconds": round(time.perf_counter() - t, 2),
           "mse": round(mse(data, pred, va, device), 5)}
    if name.startswith("vae_ffnn"):
        row["train_rows_per_s"] = round(opts["epochs"] * len(tr) / fit_s, 1)
    if name == "share_net":
        row["train_rows_per_s"] = round(clock.rows_per_s(), 1)
    return row


def cv_summary(out: list[dict]) -> dict:
    """The CV phase's headline figures from its per-fold rows."""
    ok = [o for o in out if "error" not in o]
    ffnn = [o for o in ok if o["variant"] == "vae_ffnn"] or [{"train_rows_per_s": 0.0}]
    share = [o for o in ok if o["variant"] == "share_net"]
    pinned = [o for o in ok if o["variant"] == "vae_ffnn_pinned"]
    resident = [o for o in ok if o["variant"] == "vae_ffnn" and o["fold"] == 0]
    res = {"cv_samples_per_s": round(sum(o["train_rows_per_s"] for o in ffnn) / len(ffnn), 1),
           "share_train_rows_per_s": (round(sum(o["train_rows_per_s"] for o in share)
                                            / len(share), 1) if share else None)}
    if pinned and resident:     # same seed, same rows: only the target path differs
        res["cv_pinned_rows_per_s"] = pinned[0]["train_rows_per_s"]
        res["cv_pinned_mse_minus_resident"] = round(pinned[0]["mse"] - resident[0]["mse"], 6)
    return res


def cv_folds(device, n: int, genes: int, isoforms: int, latent: int, epochs: int,
             share_epochs: int, share_folds: int, only=()) -> dict:
    """2-fold (donor-grouped) CV at width with raviso's own variants on `device`: ``mean``,
    ``vae_ffnn`` (the paper's latent FFNN; bf16 autocast, float16 targets device-resident when
    they fit) and ``share_net`` (raviso's recommended model) on the first `share_folds` folds."""
    from raviso.models import training as ffnn_fit

    t = time.perf_counter()
    data = synth_labelled(n, genes, isoforms, latent, device)
    res = {"cv_folds": 2, "cv_rows": n, "cv_isoforms": isoforms, "cv_genes": genes,
           "cv_epochs": epochs, "share_epochs": share_epochs,
           "synth_seconds": round(time.perf_counter() - t, 2)}
    fold = np.array([int(d[1:]) % 2 for d in data.donor])
    out, t_all = [], time.perf_counter()
    for f in (0, 1):
        tr, va = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
        for name, opts in fold_plan(f, device, epochs, share_epochs, share_folds, only):
            out.append({"fold": f, **fit_one(name, opts, data, tr, va, device,
                                             ffnn_fit.RESIDENT_FRACTION)})
            print(json.dumps(out[-1]), flush=True)
    res.update(cv_summary(out))
    res.update({"cv_wall_seconds": round(time.perf_counter() - t_all, 2), "cv_per_fold": out})
    return res


def ingest(rows: int, genes: int, threads: int) -> dict:
    """Read rate of the gene matrix from a raviso store (Parquet, one tensor column) with
    `threads` readers over its row groups: what one node's CPUs can feed a GPU."""
    import tempfile
    from concurrent.futures import ThreadPoolExecutor

    import pyarrow.parquet as pq

    from raviso.data.reader import Store, tensor_to_numpy
    from raviso.data.schema import EXPR
    from raviso.data.store import write_store

    X = np.random.default_rng(0).random((rows, genes), dtype=np.float32) * 8
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        write_store(f"{tmp}/s", [f"g{j}" for j in range(genes)],
                    archs4={"X": X, "sample_id": [f"a{i}" for i in range(rows)]})
        write_s = time.perf_counter() - t
        del X
        store = Store(f"{tmp}/s")
        groups = [(frag, g) for frag in store._dataset("archs4").fragments
                  for g in range(frag.metadata.num_row_groups)]
        def read(job):
            frag, g = job
            return len(tensor_to_numpy(frag.subset(row_group_ids=[g]).to_table(
                columns=[EXPR]).column(0)))
        rates = {}
        for k in sorted({1, threads}):
            t = time.perf_counter()
            with ThreadPoolExecutor(k) as pool:
                got = sum(pool.map(read, groups))
            assert got == rows
            rates[k] = rows / (time.perf_counter() - t)
    return {"ingest_rows": rows, "ingest_write_seconds": round(write_s, 2),
            "ingest_threads": threads, "ingest_rows_per_s_1": round(rates[1], 1),
            f"ingest_rows_per_s": round(rates[threads], 1),
            "ingest_gb_per_s": round(rates[threads] * genes * 4 / 1e9, 3)}


def summary_line(res: dict, vae: dict, cv: dict) -> str:
    """One human-readable line of the headline figures."""
    return (f"VAE {res.get('vae_params', 0) / 1e6:.1f}M params: {res.get('vae_samples_per_s')} "
            f"samples/s at batch {vae['batches'][0]}, MFU {res.get('vae_mfu')} (step: fetch "
            f"{res.get('vae_fetch_share')}, fwd+bwd {res.get('vae_fwd_bwd_share')}, optimizer "
            f"{res.get('vae_optimizer_share')}); CV 2 folds x "
            f"{cv['isoforms']:,} isoforms: vae_ffnn {res.get('cv_samples_per_s')} rows/s, share_net "
            f"{res.get('share_train_rows_per_s')} rows/s; ingest {res.get('ingest_rows_per_s')} "
            f"rows/s; peak GPU memory {res['peak_gpu_memory_gb']} GB")


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    ap.add_argument("--peak-tflops", type=float, default=None,
                    help=f"peak bf16 dense TFLOP/s for MFU (cuda default {H100_BF16_TFLOPS})")
    ap.add_argument("--vae-steps", type=int, default=None)
    ap.add_argument("--cv-epochs", type=int, default=None)
    ap.add_argument("--share-epochs", type=int, default=None)
    ap.add_argument("--share-folds", type=int, default=None, help="folds share_net runs (0-2)")
    ap.add_argument("--rows", type=int, default=None, help="labelled rows (default per device)")
    ap.add_argument("--isoforms", type=int, default=None)
    ap.add_argument("--genes", type=int, default=None)
    ap.add_argument("--skip", default="", help="phases to skip: vae,cv,ingest (comma list)")
    ap.add_argument("--variants", default="", help="cv: only these (comma list of mean, "
                    "vae_ffnn, vae_ffnn_pinned, share_net)")
    ap.add_argument("--amp", default="auto", choices=("auto", "bf16", "off"),
                    help="VAE steps' autocast (auto: bf16 on cuda)")
    ap.add_argument("--compile", default="auto", choices=("auto", "on", "off"),
                    help="torch.compile the VAE steps (auto: on cuda)")
    ap.add_argument("--vae-batches", default=None, help="comma list (default 512,4096 on cuda)")
    ap.add_argument("--json-out", default=None, help="also write the result here after each phase")
    return ap.parse_args(argv)


def main(argv=None) -> dict:
    a = parse_args(argv)
    device = torch.device(a.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench/gpu.py: error: --device cuda but torch sees no CUDA device "
                         "(run with --device cpu for the dry run)")
    dry = device.type == "cpu"
    torch.backends.cuda.matmul.allow_tf32 = True
    if dry:
        torch.set_num_threads(1)
        vae = dict(genes=512, hidden=(64, 32), batches=(32,), steps=a.vae_steps or 3, warmup=1)
        cv = dict(n=400, genes=300, isoforms=2000, latent=16)
        ing = dict(rows=2000, genes=512, threads=2)
    else:
        vae = dict(genes=18_965, hidden=(4096, 2048, 1024, 512), batches=(512, 4096),
                   steps=a.vae_steps or 50, warmup=5)
        cv = dict(n=17_356, genes=18_965, isoforms=156_958, latent=256)
        ing = dict(rows=20_000, genes=18_965, threads=16)
    vae.update(amp=a.amp, compile=a.compile)
    if a.vae_batches:
        vae["batches"] = tuple(int(b) for b in a.vae_batches.split(","))
    cv.update(n=a.rows or cv["n"], genes=a.genes or cv["genes"],
              isoforms=a.isoforms or cv["isoforms"], epochs=a.cv_epochs or 3,
              share_epochs=a.share_epochs or 2,
              share_folds=1 if a.share_folds is None else a.share_folds,
              only=tuple(filter(None, a.variants.split(","))))
    skip = set(filter(None, a.skip.split(",")))
    res = {"bench": "gpu", "device": a.device, "dry_run": dry,
           "device_name": torch.cuda.get_device_name() if not dry else "cpu",
           "torch": torch.__version__}

    def phase(name, fn, *args, **kw):
        if name in skip:
            return
        if not dry:
            torch.cuda.reset_peak_memory_stats()
        t = time.perf_counter()
        res.update(fn(*args, **kw))
        res[f"{name}_phase_seconds"] = round(time.perf_counter() - t, 2)
        if not dry:
            res[f"{name}_peak_gpu_memory_gb"] = round(torch.cuda.max_memory_allocated() / 1e9, 2)
        print(json.dumps(res), flush=True)
        if a.json_out:
            with open(a.json_out, "w") as f:
                json.dump(res, f)

    peak = a.peak_tflops or (H100_BF16_TFLOPS if not dry else gemm_tflops(device))
    res["peak_tflops"] = round(peak, 3)
    res["measured_bf16_tflops"] = round(gemm_tflops(device, torch.bfloat16), 1) if not dry else None
    phase("vae", vae_phase, device, peak, **vae)
    phase("ingest", ingest, **ing)
    phase("cv", cv_folds, device, **cv)
    if "ingest_rows_per_s" in res and "vae_samples_per_s" in res:
        res["ingest_vs_vae"] = round(res["ingest_rows_per_s"] / res["vae_samples_per_s"], 3)
    res["peak_gpu_memory_gb"] = max([v for k, v in res.items() if k.endswith("_peak_gpu_memory_gb")]
                                    or [0.0])
    print(summary_line(res, vae, cv))
    print(json.dumps(res))
    return res


if __name__ == "__main__":
    main()
