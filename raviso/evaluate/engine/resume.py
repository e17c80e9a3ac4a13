"""`raviso cv --resume`: reuse the (fold, variant) trials a killed or failed CV already finished.
Design notes: docs/stages.md."""

from __future__ import annotations

import hashlib
import io
import json
import posixpath
from pathlib import Path

import numpy as np

from ...core.errors import RavisoError

FINGERPRINT = "raviso-cv.json"
ERRORS_FILE = "errors.npy"
# a finished trial's checkpoint holds its (fold, variant) and metrics: Tune's own params.json and
# result.json reach the storage only when the driver syncs, so a killed driver often leaves none
TRIAL_FILE = "trial.json"
# config keys that change what a trial computes (not how it is scheduled)
SAME = ("store", "pretrained", "pretrained_ae", "variants", "folds", "repeats", "group_by",
        "fold_scheme", "epochs", "seed", "variant_options", "target_dtype", "tune", "inner_folds",
        "tuned_config")


def trial_store(out: Path, storage: str | None) -> str:
    """Where this CV's Tune trials persist: outside its temp dir, one folder per CV."""
    out = Path(out).absolute()
    if not storage:
        return str(out.parent / f".{out.name}.tune")
    key = hashlib.sha256(str(out).encode()).hexdigest()[:12]
    base = storage if "://" in str(storage) else str(Path(storage).absolute())
    return posixpath.join(base.rstrip("/"), f"raviso-cv-{out.name}-{key}")


def _fs(root: str):
    import pyarrow.fs as pafs

    if "://" in root:
        return pafs.FileSystem.from_uri(root)
    return pafs.LocalFileSystem(), root


def fingerprint(config: dict, fold_ids: np.ndarray) -> dict:
    doc = {k: config.get(k) for k in SAME}
    doc["fold_assignment_sha256"] = hashlib.sha256(
        np.ascontiguousarray(fold_ids, dtype=np.int64).tobytes()).hexdigest()
    return json.loads(json.dumps(doc, default=str))


def prepare(root: str, fp: dict, resume: bool, say=print) -> tuple[str, dict]:
    """(Tune experiment name for this attempt, finished trials to reuse {(fold, variant): (row,
    errors)}). Refuses to resume a CV of another configuration."""
    import pyarrow.fs as pafs

    fs, path = _fs(root)
    marker = posixpath.join(path, FINGERPRINT)
    have = None
    if fs.get_file_info(marker).type == pafs.FileType.File:
        with fs.open_input_stream(marker) as f:
            have = json.loads(f.read())
    if resume and have is not None and have != fp:
        diff = sorted(k for k in set(fp) | set(have) if fp.get(k) != have.get(k))
        raise RavisoError(f"--resume: the finished trials in {root} are of a different "
                          f"configuration ({', '.join(diff)} differ); rerun without --resume",
                          root)
    if not resume and fs.get_file_info(path).type == pafs.FileType.Directory:
        fs.delete_dir_contents(path)              # a fresh CV never mixes in old trials
    fs.create_dir(path, recursive=True)
    with fs.open_output_stream(marker) as f:
        f.write(json.dumps(fp, indent=1).encode())
    done = finished_trials(root) if resume else {}
    if resume:
        say(f"--resume: reusing {len(done)} finished trial(s) from {root}")
    attempts = [i for i in fs.get_file_info(pafs.FileSelector(path))
                if i.type == pafs.FileType.Directory and i.base_name.startswith("attempt-")]
    return f"attempt-{len(attempts) + 1}", done


def record_trial(checkpoint_dir: str, fold: int, variant: str, metrics: dict) -> None:
    """Fill a trial's checkpoint: `ERRORS_FILE` (popped from `metrics`) and `TRIAL_FILE`, so the
    checkpoint alone says which trial it is and what it scored."""
    np.save(posixpath.join(checkpoint_dir, ERRORS_FILE), metrics.pop("per_sample"))
    doc = {"job": [int(fold), str(variant)], "metrics": metrics}
    Path(checkpoint_dir, TRIAL_FILE).write_text(json.dumps(
        doc, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


def _from_checkpoint(fs, trial_file: str):
    """((fold, variant), (metrics, errors)) of a checkpoint holding `TRIAL_FILE`."""
    with fs.open_input_stream(trial_file) as f:
        doc = json.loads(f.read())
    with fs.open_input_stream(posixpath.join(posixpath.dirname(trial_file), ERRORS_FILE)) as f:
        errors = np.load(io.BytesIO(f.read()))
    fold, variant = doc["job"]
    return (int(fold), str(variant)), (doc["metrics"], errors)


def finished_trials(root: str) -> dict:
    """{(fold, variant): (metrics dict, per-sample errors)} of every trial any attempt finished."""
    import pyarrow.fs as pafs

    fs, path = _fs(root)
    out = {}
    if fs.get_file_info(path).type != pafs.FileType.Directory:
        return out
    for info in fs.get_file_info(pafs.FileSelector(path, recursive=True)):
        if info.base_name == TRIAL_FILE:
            try:
                key, value = _from_checkpoint(fs, info.path)
            except (FileNotFoundError, OSError, ValueError, KeyError, TypeError):
                continue                           # an upload cut short: rerun the trial
            out[key] = value
            continue
        if info.base_name != "result.json":
            continue
        trial = posixpath.dirname(info.path)
        try:
            with fs.open_input_stream(posixpath.join(trial, "params.json")) as f:
                fold, variant = json.loads(f.read())["job"]
            with fs.open_input_stream(info.path) as f:
                lines = [ln for ln in f.read().decode().splitlines() if ln.strip()]
            metrics = json.loads(lines[-1]) if lines else {}
            ckpt = metrics.get("checkpoint_dir_name")
            if "mse" not in metrics or not ckpt:
                continue
            with fs.open_input_stream(posixpath.join(trial, ckpt, ERRORS_FILE)) as f:
                errors = np.load(io.BytesIO(f.read()))
        except (FileNotFoundError, OSError, ValueError, KeyError, TypeError):
            continue                               # an unfinished or damaged trial: rerun it
        out[(int(fold), str(variant))] = (metrics, errors)
    return out


def reused_trials(done: dict | None, keys) -> tuple[list[dict], dict]:
    """results.json trial rows (marked ``reused``) and per-sample errors of the `done` trials."""
    rows, errors = [], {}
    for (fold, variant), (metrics, err) in sorted((done or {}).items()):
        row = {"fold": fold, "variant": variant, "status": "ok", "attempts": 1, "retried": False,
               "error": None, "reused": True}
        row.update({k: metrics[k] for k in keys if k in metrics})
        rows.append(row)
        errors[(fold, variant)] = err
    return rows, errors


def discard(root: str) -> None:
    """The CV is written whole: its trial store is no longer needed."""
    import pyarrow.fs as pafs

    fs, path = _fs(root)
    if fs.get_file_info(path).type == pafs.FileType.Directory:
        fs.delete_dir(path)
