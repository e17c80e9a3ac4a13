"""Store writer/reader: exact round trip, atomicity, folds."""

import json
import time

import numpy as np
import pyarrow.parquet as pq
import pytest

from raviso.data import Store, make_folds
from raviso.core.errors import RavisoError
from raviso.data.store import StoreBuilder, rows_per_group, write_store


def _tiny(rng, n=50, g=7, i=11):
    genes = [f"G{j}" for j in range(g)]
    isoforms = [f"ENST{j:05d}.1" for j in range(i)]
    iso_gene = [genes[j % g] for j in range(i)]
    Xg = rng.random((n, g), dtype=np.float32) * 5
    Xi = rng.random((n, i), dtype=np.float32) * 3
    ids = [f"GTEX-D{j % 13}-000{j}" for j in range(n)]
    tissue = [f"T{j % 4}" for j in range(n)]
    return genes, isoforms, iso_gene, Xg, Xi, ids, tissue


def test_round_trip_exact(tmp_path):
    rng = np.random.default_rng(0)
    genes, isoforms, iso_gene, Xg, Xi, ids, tissue = _tiny(rng)
    path = write_store(tmp_path / "s", genes, isoforms=isoforms, isoform_gene=iso_gene,
                       gtex_gene=dict(X=Xg, sample_id=ids, tissue=tissue),
                       gtex_isoform=dict(X=Xi, sample_id=ids, tissue=tissue))
    st = Store(path)
    np.testing.assert_array_equal(st.numpy("gtex_gene"), Xg)
    np.testing.assert_array_equal(st.numpy("gtex_isoform"), Xi)
    meta = st.meta("gtex_gene")
    assert list(meta.sample_id) == ids and list(meta.tissue) == tissue
    assert meta.donor.isna().all()
    assert st.genes == genes and st.isoforms == isoforms and st.isoform_gene == iso_gene
    assert not st.has("archs4")
    # one tensor column, not one column per feature
    schema = pq.read_schema(next((path / "gtex_isoform").glob("*.parquet")))
    assert schema.names == ["sample_id", "tissue", "donor", "expr"]
    assert str(schema.field("expr").type.extension_name) == "arrow.fixed_shape_tensor"


def test_row_groups_and_files_rotate(tmp_path, monkeypatch):
    import raviso.data.store as store

    monkeypatch.setattr(store, "ROW_GROUP_BYTES", 4 * 7 * 10)   # 10 rows per group
    monkeypatch.setattr(store, "ROW_GROUPS_PER_FILE", 2)
    rng = np.random.default_rng(1)
    genes, *_ = _tiny(rng)
    X = rng.random((45, 7), dtype=np.float32)
    with StoreBuilder(tmp_path / "s", genes) as sb:
        w = sb.dataset("archs4")
        for a in range(0, 45, 7):   # slabs not aligned to groups
            w.write(X[a:a + 7], [f"S{j}" for j in range(a, min(a + 7, 45))])
    files = sorted((tmp_path / "s" / "archs4").glob("*.parquet"))
    assert len(files) == 3
    assert [pq.ParquetFile(f).metadata.num_row_groups for f in files] == [2, 2, 1]
    np.testing.assert_array_equal(Store(tmp_path / "s").numpy("archs4"), X)


def test_row_group_size_matches_ray_block():
    assert rows_per_group(18965) == 1769 and rows_per_group(156958) == 213


def test_failure_leaves_nothing(tmp_path):
    genes = ["A", "B"]
    with pytest.raises(RuntimeError):
        with StoreBuilder(tmp_path / "s", genes) as sb:
            sb.dataset("archs4").write(np.ones((3, 2)), ["a", "b", "c"])
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RavisoError, match="not a raviso store"):
        (tmp_path / "half").mkdir()
        Store(tmp_path / "half")


def test_existing_target_refused_and_duplicates(tmp_path):
    (tmp_path / "s").mkdir()
    with pytest.raises(RavisoError, match="already exists"):
        StoreBuilder(tmp_path / "s", ["A"])
    with pytest.raises(RavisoError, match="duplicate gene names: A"):
        StoreBuilder(tmp_path / "t", ["A", "B", "A"])


def test_folds_stratified_grouped_reproducible():
    rng = np.random.default_rng(3)
    n = 400
    donors = np.array([f"D{j}" for j in rng.integers(0, 60, n)])
    sizes = ["big"] * 200 + ["mid"] * 120 + ["small"] * 77 + ["rare"] * 3
    tissue = np.array(sizes)
    f = make_folds(tissue, donors, k=5, seed=7)
    assert f.grouped_by == "donor" and f.rare_tissues == ["rare"]
    assert sorted(np.unique(f.fold)) == [0, 1, 2, 3, 4]
    for d in np.unique(donors):   # donors never split
        assert len(np.unique(f.fold[donors == d])) == 1
    big_share = [np.mean(tissue[f.fold == i] == "big") for i in range(5)]
    assert max(big_share) - min(big_share) < 0.2
    assert np.array_equal(f.fold, make_folds(tissue, donors, k=5, seed=7).fold)
    g = make_folds(tissue, None, k=5, seed=7)
    assert g.grouped_by == "none"
    counts = [np.sum(tissue[g.fold == i] == "big") for i in range(5)]
    assert counts == [40] * 5
    with pytest.raises(RavisoError, match="cannot make 5 folds"):
        make_folds(["a", "b"], None, k=5)


def test_missing_metadata_is_none_and_folds_ungrouped(tmp_path):
    X = np.ones((12, 2), np.float32)
    write_store(tmp_path / "s", ["A", "B"], gtex_gene=dict(X=X, sample_id=[f"s{j}" for j in range(12)]))
    meta = Store(tmp_path / "s").meta("gtex_gene")
    assert meta.tissue.tolist() == [None] * 12 and meta.donor.tolist() == [None] * 12
    f = make_folds(meta.tissue, meta.donor, k=3, seed=0)
    assert f.grouped_by == "none" and np.bincount(f.fold).tolist() == [4, 4, 4]
    logo = make_folds(["a"] * 6, [f"D{j // 2}" for j in range(6)], k=5, scheme="auto")
    assert logo.k == 3 and logo.to_dict()["scheme"] == "logo"


def _small_groups(monkeypatch, rows_per_group_, groups_per_file, d):
    import raviso.data.store as store

    monkeypatch.setattr(store, "ROW_GROUP_BYTES", 4 * d * rows_per_group_)
    monkeypatch.setattr(store, "ROW_GROUPS_PER_FILE", groups_per_file)


@pytest.mark.parametrize("threads", [0, 1, 3])
def test_writer_lanes_keep_order_and_exact_values(tmp_path, monkeypatch, threads):
    """Many files encoded by several lanes at once come back in row order, bit for bit, although
    the caller overwrites its one slab buffer right after every write (as convert's reader does)."""
    d, n = 5, 1003
    _small_groups(monkeypatch, 10, 2, d)
    rng = np.random.default_rng(4)
    X = rng.standard_normal((n, d)).astype(np.float32)
    ids = [f"S{j}" for j in range(n)]
    slab = np.empty((37, d), np.float32)          # one reused buffer, not aligned to groups
    with StoreBuilder(tmp_path / "s", [f"G{j}" for j in range(d)], threads=threads) as sb:
        w = sb.dataset("archs4")
        assert w.threads == threads
        for a in range(0, n, 37):
            e = min(n, a + 37)
            slab[:e - a] = X[a:e]
            w.write(slab[:e - a], ids[a:e], donor=[f"D{j % 3}" for j in range(a, e)])
            slab[:] = np.nan                      # reused at once: the writer must own its copy
        for a in range(0, 40, 20):               # whole groups straight from the caller's array
            w.write(X[a:a + 20] + 1, [f"T{j}" for j in range(a, a + 20)])
    files = sorted((tmp_path / "s" / "archs4").glob("*.parquet"))
    groups = -(-(n + 40) // 10)
    assert len(files) == -(-groups // 2) == Store(tmp_path / "s").manifest["datasets"]["archs4"][
        "files"]
    assert [pq.ParquetFile(f).metadata.num_row_groups for f in files] == [2] * (len(files) - 1) + [
        groups - 2 * (len(files) - 1)]
    st = Store(tmp_path / "s")
    np.testing.assert_array_equal(st.numpy("archs4"), np.concatenate([X, X[:40] + 1]))
    meta = st.meta("archs4")
    assert list(meta.sample_id) == ids + [f"T{j}" for j in range(40)]
    assert list(meta.donor[:n]) == [f"D{j % 3}" for j in range(n)] and meta.donor[n:].isna().all()


@pytest.mark.parametrize("surfaces_in", ["write", "commit"])
def test_error_in_encoder_lane_propagates_and_leaves_nothing(tmp_path, monkeypatch, surfaces_in):
    """A real failure inside a lane thread (its next part file cannot be created) is raised to the
    caller, by a later `write` or by the commit, and no store or temporary directory is left."""
    d = 3
    _small_groups(monkeypatch, 4, 1, d)
    import shutil

    X = np.ones((4, d), np.float32)
    with pytest.raises(OSError) as err:
        with StoreBuilder(tmp_path / "s", ["A", "B", "C"], threads=2) as sb:
            w = sb.dataset("archs4")
            w.write(X, ["a", "b", "c", "d"])
            for _ in range(100):                  # every later part file fails to open
                shutil.rmtree(w.dir, ignore_errors=True)   # (the lane may still be writing)
                if not w.dir.exists():
                    break
                time.sleep(0.01)
            w.write(X, ["e", "f", "g", "h"])
            if surfaces_in == "write":
                for k in range(100):              # bounded buffers: a write sees the failure
                    w.write(X, [f"x{k}{j}" for j in range(4)])
                pytest.fail("the lane's error never reached write()")
    frames = []
    tb = err.value.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame.f_code.co_name)
        tb = tb.tb_next
    assert "_encode" in frames                    # raised in the lane, re-raised to the caller
    assert list(tmp_path.iterdir()) == []


def test_discard_drops_a_dataset_and_restarts_it(tmp_path):
    genes = ["A", "B"]
    with StoreBuilder(tmp_path / "s", genes) as sb:
        w = sb.dataset("gtex_gene")
        w.write(np.zeros((3, 2), np.float32), ["x", "y", "z"])
        sb.discard("gtex_gene")
        assert not (sb.tmp / "gtex_gene").exists()
        sb.discard("gtex_gene")                   # nothing to drop: no error
        sb.dataset("gtex_gene").write(np.full((2, 2), 7, np.float32), ["p", "q"])
    st = Store(tmp_path / "s")
    np.testing.assert_array_equal(st.numpy("gtex_gene"), np.full((2, 2), 7, np.float32))
    assert list(st.meta("gtex_gene").sample_id) == ["p", "q"]
