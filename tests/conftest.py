"""Shared fixtures. One local Ray session per test process (start-up costs seconds)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Test modules share helpers across folders (`from test_bad_input import run_cli`): every folder
# is importable, whichever subset pytest runs (appended, so the repo's own modules come first).
for _folder in sorted(p for p in Path(__file__).parent.iterdir() if (p / "__init__.py").exists()
                      or any(p.glob("test_*.py"))):
    if str(_folder) not in sys.path:
        sys.path.append(str(_folder))
REALDATA = ROOT.parent / "shared" / "realdata"


@pytest.fixture(scope="session")
def ray_session():
    """A real local Ray (2 logical CPUs more than physical would hide the Train+Data hang; we use
    4 logical CPUs so a 2-worker trainer at 0.5 CPU each leaves Ray Data a budget)."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    from raviso.core.ray_session import init_ray

    init_ray(num_cpus=4, object_store_memory=2 << 30)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def realdata() -> Path:
    if not REALDATA.is_dir():
        pytest.skip("../shared/realdata is absent (only on the development machine)")
    return REALDATA


@pytest.fixture
def one_torch_thread():
    """As in a cv trial (1 CPU each): on a shared 2-core machine two OpenMP threads per tiny model
    step spin against each other and make the model tests ~10x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.hookimpl(optionalhook=True)           # a hook of pytest-xdist (the test extra)
def pytest_xdist_make_scheduler(config, log):
    """`./dev test` runs the suite in two processes (pytest-xdist, `-n 2`), each with its own Ray
    session: whole modules go to one process each (module fixtures are built once), in collection
    order, and every `multinode` test goes to the same process after all of its other tests (their
    cluster replaces that process's session; a second cluster would double the load)."""
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return "tests/multinode" if "/multinode/" in f"/{module}" else module

    config.option.loadscopereorder = False       # keep the order below: multinode last
    return ModuleScheduling(config, log)


def pytest_collection_modifyitems(items):
    """Every test that uses the shared Ray session is a `ray` test (`pytest -m "not ray"` skips
    them); tests that start Ray another way carry the marker themselves. `multinode` tests run
    last: their cluster replaces the shared session in this process. They live in
    tests/multinode, which the two-process run schedules as one unit (above)."""
    for item in items:
        if "ray_session" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.ray)
    items.sort(key=lambda item: item.get_closest_marker("multinode") is not None
               or "multinode" in item.path.parent.parts)
