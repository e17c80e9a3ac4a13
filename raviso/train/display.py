"""What the driver shows while `raviso pretrain` runs: a zero-CPU actor that workers report steps
and epochs to, and the driver-side loop that turns them into a progress line, one line per epoch
and RUN/metrics.jsonl as the run goes."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from ..core.atomic import atomic_file


def sink_class():
    import ray

    @ray.remote(num_cpus=0)
    class MetricsSink:
        """Collects per-epoch records and step progress from rank 0 for the driver's display."""

        def __init__(self):
            self.events = []

        def reset(self, history, start_epoch):
            self.events.append(("reset", history, start_epoch))

        def step(self, epoch, samples):
            self.events.append(("step", epoch, samples))

        def epoch(self, record):
            self.events.append(("epoch", record))

        def drain(self):
            ev, self.events = self.events, []
            return ev

    return MetricsSink


class Display:
    """Polls the sink while `fit` runs: rich progress bars plus one printed line per epoch, and
    RUN/metrics.jsonl rewritten (deduplicated by epoch) whenever an epoch completes."""

    def __init__(self, sink, run_dir: Path, epochs: int, rows_per_epoch: int, quiet: bool):
        self.sink, self.run_dir, self.epochs = sink, run_dir, epochs
        self.rows = rows_per_epoch
        self.quiet = quiet
        # what metrics.jsonl already holds (a resumed RUN): merged, never dropped
        old = run_dir / "metrics.jsonl"
        self.records: dict[int, dict] = {int(r["epoch"]): r for r in map(
            json.loads, old.read_text().splitlines() if old.is_file() else []) if "epoch" in r}
        self.stop = threading.Event()

    def write_metrics(self):
        with atomic_file(self.run_dir / "metrics.jsonl") as tmp:
            tmp.write_text("".join(json.dumps(self.records[e]) + "\n"
                                   for e in sorted(self.records)))

    def handle(self, ev, progress, t_ep, t_st, console):
        if ev[0] == "reset":
            self.records.update({int(r["epoch"]): r for r in ev[1]})
            if progress is not None:
                progress.update(t_ep, completed=ev[2])
            self.write_metrics()
        elif ev[0] == "step" and progress is not None:
            progress.update(t_st, completed=min(ev[2], self.rows),
                            description=f"epoch {ev[1] + 1}")
        elif ev[0] == "epoch":
            r = ev[1]
            self.records[int(r["epoch"])] = r
            self.write_metrics()
            if progress is not None:
                progress.update(t_ep, completed=r["epoch"])
                progress.update(t_st, completed=0)
            if console is not None:
                console.print(_epoch_line(r))

    def run(self):
        import ray

        progress = t_ep = t_st = console = None
        if not self.quiet:
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeElapsedColumn)

            console = Console(stderr=True)
            progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), console=console, transient=True)
            t_ep = progress.add_task("epochs", total=self.epochs)
            t_st = progress.add_task("epoch 1", total=max(1, self.rows))
            progress.start()
        try:
            while True:
                done = self.stop.is_set()
                try:
                    events = ray.get(self.sink.drain.remote(), timeout=30)
                except Exception:  # noqa: BLE001 - display must never kill training
                    events = []
                for ev in events:
                    self.handle(ev, progress, t_ep, t_st, console)
                if done:
                    break
                self.stop.wait(0.5)
        finally:
            if progress is not None:
                progress.stop()


def _epoch_line(r: dict) -> str:
    parts = [f"epoch {r['epoch']:>3}", f"ELBO train {r['train_elbo']:.1f}",
             f"recon {r['train_recon']:.1f}", f"kl {r['train_kl']:.2f}"]
    for name in ("val", "gtex"):
        if f"{name}_elbo" in r:
            parts.append(f"{name} {r[f'{name}_elbo']:.1f}")
    parts.append(f"{r['samples_per_s']:.0f}/s")
    return " ".join(parts)
