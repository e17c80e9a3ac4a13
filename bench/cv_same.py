"""`python -m bench.cv_same CV_A CV_B`: do two CV directories report the same per-trial MSEs?

Compares results.json's trials (fold, variant) -> mse exactly (float equality, as the cv tests
do), over the trials both ran; prints one line per difference and a JSON summary as the last line;
exits 1 when any shared trial differs or they share none. Used to check that a speed change left
every trial's result alone (bench/README.md, "cv per-trial profile").
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def trial_mses(cv: Path) -> dict:
    doc = json.loads((Path(cv) / "results.json").read_text())
    return {(t["fold"], t["variant"]): t.get("mse") for t in doc["trials"] if t["status"] == "ok"}


def compare(a: Path, b: Path) -> dict:
    ma, mb = trial_mses(a), trial_mses(b)
    shared = sorted(set(ma) & set(mb))
    differ = [(k, ma[k], mb[k]) for k in shared if ma[k] != mb[k]]
    return {"shared": len(shared), "only_a": len(set(ma) - set(mb)),
            "only_b": len(set(mb) - set(ma)), "differ": len(differ),
            "max_abs_diff": max((abs(x - y) for _, x, y in differ), default=0.0),
            "differences": [[f, v, x, y] for (f, v), x, y in differ]}


def main(argv=None) -> int:
    a, b = (argv or sys.argv[1:])[:2]
    res = compare(Path(a), Path(b))
    for f, v, x, y in res["differences"]:
        print(f"fold {f} {v}: {x!r} != {y!r}")
    print(json.dumps({k: v for k, v in res.items() if k != "differences"}))
    return 0 if res["shared"] and not res["differ"] else 1


if __name__ == "__main__":
    sys.exit(main())
