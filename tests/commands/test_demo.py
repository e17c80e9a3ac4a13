"""`raviso demo`: the cheap contract (the whole run takes minutes; it is timed by hand, see the
cv engineer's report / bench/README.md)."""

from __future__ import annotations

import pytest

from raviso.core.errors import RavisoError


def test_demo_refuses_an_existing_directory_and_leaves_it_alone(tmp_path):
    from raviso.demo import run_demo

    out = tmp_path / "demo"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(RavisoError, match="already exists"):
        run_demo(out=out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    with pytest.raises(RavisoError, match="parent directory does not exist"):
        run_demo(out=tmp_path / "no" / "demo")
