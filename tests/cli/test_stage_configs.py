"""One config dataclass per stage (`raviso.core.config`): the CLI builds it from flags, the stage
function takes it as ``cfg=`` and still takes the same options as keywords. A new option is a
field of the config AND a keyword of the stage function, with the same default: checked here."""

from __future__ import annotations

import dataclasses
import inspect
import json

import pytest

from raviso.evaluate.config import CvConfig
from raviso.evaluate.cv import run_cv
from raviso.io.config import ConvertConfig
from raviso.io.convert import convert
from raviso.serve.config import FitConfig
from raviso.serve.fit import fit_store

STAGES = [  # (config, stage function, its parameters that are not options)
    (CvConfig, run_cv, {"store", "out", "progress", "cfg", "_fail_once"}),
    (ConvertConfig, convert, {"store", "log", "cfg"}),
    (FitConfig, fit_store, {"store", "out", "cfg"}),
]


@pytest.mark.parametrize("config, stage, other", STAGES, ids=lambda v: getattr(v, "__name__", ""))
def test_config_fields_are_the_stage_keywords_with_the_same_defaults(config, stage, other):
    params = {n: p.default for n, p in inspect.signature(stage).parameters.items()
              if n not in other}
    fields = {f.name: f.default for f in dataclasses.fields(config)}
    assert set(fields) == set(params), "add the option to both (raviso/core/config.py)"
    assert fields == {n: params[n] for n in fields}


def test_convert_from_a_config_equals_convert_from_keywords(tmp_path):
    """Same store either way (the manifest's creation time aside)."""
    from raviso.synth.generate import generate

    generate(tmp_path / "src", "tiny", seed=1, heldout=False)
    convert(tmp_path / "a", tmp_path / "src", gene_set="exact", checksum=False)
    convert(tmp_path / "b", cfg=ConvertConfig(src=tmp_path / "src", checksum=False))
    a, b = (json.loads((tmp_path / s / "manifest.json").read_text()) for s in "ab")
    for m in (a, b):
        m.pop("created")
        for src in m["sources"]:
            src["path"] = str(src["path"]).replace(str(tmp_path), "")
    assert a == b
    assert a["datasets"]["gtex_isoform"]["rows"] > 0
