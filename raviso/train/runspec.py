"""A RUN's identity and where its Ray Train checkpoints live.
Design notes: docs/stages.md."""

from __future__ import annotations

import json
import os
import posixpath
import re
import uuid
from pathlib import Path

from ..core.errors import RavisoError

RUN_SPEC = "run.json"
LEGACY_RAY_RUN_NAME = "train"     # RUNs written before run ids
CLUSTER_MAX_FAILURES = 3


def new_identity(run_dir: Path) -> dict:
    run_id = uuid.uuid4().hex[:12]
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(run_dir).name)[:60] or "run"
    return {"run_id": run_id, "ray_run_name": f"{stem}-{run_id}"}


def read_spec(run_dir: Path) -> dict:
    path = Path(run_dir) / RUN_SPEC
    if not path.is_file():
        raise RavisoError("nothing to resume (no run.json)", run_dir)
    try:
        spec = json.loads(path.read_text())
        spec["model"], spec["train"]
    except (ValueError, KeyError, TypeError) as e:
        raise RavisoError(f"damaged run.json ({type(e).__name__}: {e})", path) from None
    return spec


def storage_for(run_dir: Path, spec: dict, given: str | None) -> str:
    """Ray Train storage: --storage, else the one the RUN recorded, else RUN/checkpoints."""
    storage = given or spec.get("storage") or str(Path(run_dir) / "checkpoints")
    return storage if "://" in storage else str(Path(storage).absolute())


def ray_run_name(spec: dict) -> str:
    return spec.get("ray_run_name") or LEGACY_RAY_RUN_NAME


def default_max_failures(address: str | None) -> int:
    """Worker restarts from the last checkpoint: none on a private local Ray (a failure there is
    a bug to see), `CLUSTER_MAX_FAILURES` on a cluster, where spot nodes come and go."""
    address = address or os.environ.get("RAVISO_RAY_ADDRESS")
    return CLUSTER_MAX_FAILURES if address else 0


def _fs(storage: str):
    import pyarrow.fs as pafs

    if "://" in storage:
        return pafs.FileSystem.from_uri(storage)
    return pafs.LocalFileSystem(), storage


def checkpoints(storage: str, name: str) -> list[str]:
    """Checkpoint directories of Ray run `name` under `storage`, oldest first."""
    import pyarrow.fs as pafs

    fs, root = _fs(storage)
    base = posixpath.join(root, name)
    if fs.get_file_info(base).type != pafs.FileType.Directory:
        return []
    return sorted(i.path for i in fs.get_file_info(pafs.FileSelector(base))
                  if i.type == pafs.FileType.Directory and i.base_name.startswith("checkpoint_"))


def recorded_epochs(run_dir: Path) -> int:
    path = Path(run_dir) / "metrics.jsonl"
    return sum(1 for line in path.read_text().splitlines() if line.strip()) if path.is_file() else 0


def newest_state(storage: str, found: list[str]) -> dict | None:
    """state.json of the newest whole checkpoint in `found`. An upload killed part-way leaves a
    checkpoint directory that Ray never registered (it resumes from its own record of the
    checkpoints it committed), often without state.json: it is skipped, not a reason to refuse."""
    fs, _ = _fs(storage)
    for path in reversed(found):
        try:
            with fs.open_input_stream(posixpath.join(path, "state.json")) as f:
                return json.loads(f.read())
        except (FileNotFoundError, OSError, ValueError):
            continue
    return None


def check_resumable(run_dir: Path, spec: dict, storage: str, model: dict) -> None:
    name = ray_run_name(spec)
    found = checkpoints(storage, name)
    if not found:
        n = recorded_epochs(run_dir)
        if n:
            raise RavisoError(f"no checkpoint of this run under {posixpath.join(storage, name)}: "
                              f"resuming would restart at epoch 0 and erase the {n} epochs in "
                              "metrics.jsonl (pass --storage where its checkpoints are)", run_dir)
        return
    state = newest_state(storage, found)
    if state is None:
        raise RavisoError("no checkpoint of this run has a readable state.json", found[-1])
    theirs, ours = state.get("run_id"), spec.get("run_id")
    if (theirs or ours) and theirs != ours:
        raise RavisoError(f"the checkpoints under {posixpath.join(storage, name)} belong to "
                          f"another run (run id {theirs}, this RUN is {ours}); refusing to "
                          "resume from them", run_dir)
    if state.get("model") != model:
        raise RavisoError("the checkpoints were written by another model configuration; "
                          "refusing to resume from them", run_dir)


def ray_run_dir(run_dir) -> str:
    """Where a RUN's Ray Train checkpoints are (storage/<ray run name>), from its run.json."""
    spec = read_spec(Path(run_dir))
    return posixpath.join(storage_for(Path(run_dir), spec, None), ray_run_name(spec))
