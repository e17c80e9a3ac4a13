"""The pretraining map of docs/pretraining.md: world structure x labelled size, each context
minus the PCA context, with Holm over every cell.

    python -m bench.pretraining_map ROOT [--json OUT]
    python -m bench.pretraining_map --anchor POINT_OR_CV_DIR ...   (docs/models.md's gene table)

ROOT holds one folder per world (``default``, ``structured``, ``compendium``: docs/design-worlds.md)
and in each one ``raviso study`` output per labelled size, ``study-f<F>``, and for the held-out
tissues, ``study-tissue`` (more columns of the same point, e.g. a context run later with the same
seed, may sit in ``study-f<F>-<tag>``: the same folds, checked). A point is named by its study
point (``f0.05``, ``f1``, ``tissue``): the held-out-tissue point is not the fraction-1 point.
Each cell: share_net with a context minus share_net with its per-fold PCA context, per fold,
Nadeau-Bengio / Bouckaert-Frank corrected t-test and 95% CI (`raviso.evaluate.study.report`'s
`compare`); Holm over ALL cells of the map (every world, size and context together). Reads
results.json only; no Ray.

``--anchor``: per results.json folder (a study point or a `raviso cv` output), every column's
mean MSE with its corrected 95% interval, and share_net minus the folder's best baseline; then,
per folder, share_net minus share_net[anchor=none] when both ran, and every column of each later
folder minus the same column of the first (the same folds: a world against its variant).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

WORLDS = ("default", "structured", "compendium")


def _point_order(name: str) -> tuple:
    """Study points by labelled size, the held-out-tissue point last."""
    return (1, 0.0) if name == "tissue" else (0, float(name.lstrip("f")))


def merged_points(root: Path) -> dict[tuple[str, str], dict]:
    """(world, point name) -> one point with the columns of every study of that point."""
    from raviso.evaluate.study.report import load_point

    out: dict[tuple[str, str], dict] = {}
    for world in WORLDS:
        for results in sorted((root / world).glob("study-*/points/*/results.json")):
            pt = load_point(results.parent)
            key = (world, results.parent.name)
            if key not in out:
                out[key] = pt
                continue
            have = out[key]
            if have["n_train"] != pt["n_train"] or have["n_test"] != pt["n_test"]:
                raise SystemExit(f"{results}: not the same folds as the point's first study")
            for v in pt["variants"]:
                if v not in have["per_fold"]:
                    have["variants"].append(v)
                    have["per_fold"][v], have["mean"][v] = pt["per_fold"][v], pt["mean"][v]
    return out


def map_cells(points: dict) -> list[dict]:
    """Every (world, fraction, context) contrast, Holm-adjusted over all of them."""
    from raviso.evaluate.stats.paired import holm
    from raviso.evaluate.study.report import compare

    cells = []
    for (world, name), pt in sorted(points.items(), key=lambda kv: (WORLDS.index(kv[0][0]),
                                                                    _point_order(kv[0][1]))):
        for ctx in ("vae", "finetune"):
            col = f"share_net[context={ctx}]"
            if col in pt["per_fold"] and "share_net" in pt["per_fold"]:
                c = compare(pt, col, "share_net")
                cells.append({"world": world, "point": name,
                              "fraction": float(pt["fraction"]), "context": ctx,
                              "folds": len(pt["n_train"]), "repeats": pt["repeats"],
                              "n_train": sum(pt["n_train"]) / len(pt["n_train"]), **c})
    for c, p in zip(cells, holm([c["p"] for c in cells])):
        c["p_holm"] = p
    return cells


def table(cells: list[dict]) -> str:
    rows = ["| world | labelled size (fraction of donors) | training samples (mean) | folds | "
            "context | PCA context | context | context - PCA [95% CI] | p | Holm p |",
            "| --- | ---: | ---: | ---: | --- | ---: | ---: | --- | ---: | ---: |"]
    for c in cells:
        lo, hi = c["ci95"]
        folds = f"{c['repeats']} x {c['folds'] // c['repeats']}" if c["repeats"] > 1 \
            else str(c["folds"])
        size = "1, held-out tissues" if c["point"] == "tissue" else f"{c['fraction']:g}"
        rows.append(f"| {c['world']} | {size} | {c['n_train']:.0f} | {folds} | "
                    f"{c['context']} | {c['mean_b']:.4f} | {c['mean_a']:.4f} | "
                    f"{c['diff']:+.4f} [{lo:+.4f}, {hi:+.4f}] | {c['p']:.3g} | "
                    f"{c['p_holm']:.3g} |")
    return "\n".join(rows)


def anchor_table(dirs: list[Path]) -> str:
    """Each folder's columns (MSE [95% CI]) and share_net minus its best baseline."""
    from raviso.evaluate.stats.paired import mse_ci
    from raviso.evaluate.study.report import compare, load_point
    from raviso.models.variants import spec

    rows = ["| results | column | MSE [95% CI] | minus best baseline [95% CI], p |",
            "| --- | --- | --- | --- |"]
    for d in dirs:
        pt = load_point(d)
        base = [v for v in pt["variants"] if spec(v).kind == "baseline"]
        best = min(base, key=pt["mean"].get)
        for v in sorted(pt["variants"], key=pt["mean"].get):
            lo, hi = mse_ci(pt["per_fold"][v], pt["n_train"], pt["n_test"])
            vs = ""
            if v != best:
                c = compare(pt, v, best)
                vs = f"{c['diff']:+.4f} [{c['ci95'][0]:+.4f}, {c['ci95'][1]:+.4f}], {c['p']:.3g}"
            rows.append(f"| {d} | {v} | {pt['mean'][v]:.4f} [{lo:.4f}, {hi:.4f}] | "
                        f"{'(best baseline)' if v == best else vs} |")
    return "\n".join(rows)


def anchor_pairs(dirs: list[Path]) -> str:
    """share_net minus share_net[anchor=none] per folder; each column of dirs[1:] minus dirs[0]'s
    (the folders must share their folds: checked by their sizes)."""
    from raviso.evaluate.study.report import compare, load_point

    rows = ["| results | contrast | difference [95% CI] | corrected p |", "| --- | --- | --- | --- |"]
    pts = [load_point(d) for d in dirs]
    cell = lambda c: (f"{c['diff']:+.4f} [{c['ci95'][0]:+.4f}, {c['ci95'][1]:+.4f}] | "  # noqa: E731
                      + ("n/a" if c["p"] is None else f"{c['p']:.3g}"))
    for d, pt in zip(dirs, pts):
        if {"share_net", "share_net[anchor=none]"} <= set(pt["variants"]):
            c = compare(pt, "share_net", "share_net[anchor=none]")
            rows.append(f"| {d} | share_net - share_net[anchor=none] | {cell(c)} |")
    first = pts[0]
    for d, pt in zip(dirs[1:], pts[1:]):
        if (pt["n_train"], pt["n_test"]) != (first["n_train"], first["n_test"]):
            continue
        for v in (v for v in first["variants"] if v in pt["variants"]):
            both = {**first, "per_fold": {"a": pt["per_fold"][v], "b": first["per_fold"][v]},
                    "mean": {"a": pt["mean"][v], "b": first["mean"][v]}}
            c = compare(both, "a", "b")
            rows.append(f"| {d} minus {dirs[0]} | {v} | {cell(c)} ({c['relative']:+.1%}) |")
    return "\n".join(rows)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path, nargs="?")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--anchor", type=Path, nargs="+")
    args = ap.parse_args(argv)
    if args.anchor:
        print(anchor_table(args.anchor))
        print()
        print(anchor_pairs(args.anchor))
        return
    cells = map_cells(merged_points(args.root))
    print(table(cells))
    if args.json:
        args.json.write_text(json.dumps(cells, indent=1))


if __name__ == "__main__":
    main()
