"""The cached archive splits (repro/timeseries_archive.py) beyond what the EigenWorms and healthcare
tests cover: an incomplete cache is rebuilt, float64 caches load as float32, a pickled .npy is refused,
an interrupted save keeps the previous files, --no-download with half an archive never downloads."""
import errno
import io

import numpy as np
import pytest

from eigenworms import data as worms_data
from healthcare import data as health_data
from repro import timeseries_archive
from tiny_data import write_problem


def splits_of(n_train=5, seed=0, channels=2, length=7):
    rng = np.random.default_rng(seed)
    return {split: (rng.normal(size=(n, length, channels)).astype(np.float32), rng.integers(0, 5, n))
            for split, n in (("train", n_train), ("valid", 2), ("test", 3))}


def no_problem(y):
    return None


def test_an_incomplete_cache_is_not_read_and_is_rebuilt_from_the_archive(tmp_path):
    write_problem(tmp_path / "raw", "EigenWorms", 30, 10, channels=6, length=50, regression=False)
    first = worms_data.load_splits(tmp_path)
    (tmp_path / "validy.npy").unlink()
    assert timeseries_archive.load_cached_splits(tmp_path, 6, worms_data.label_problem) is None
    again = worms_data.load_splits(tmp_path)
    assert all(np.array_equal(again[k][i], first[k][i]) for k in first for i in (0, 1))
    assert (tmp_path / "validy.npy").exists()


def test_a_float64_cache_loads_as_float32(tmp_path):
    splits = splits_of()
    timeseries_archive.save_splits(tmp_path, {k: (x.astype(np.float64), y) for k, (x, y) in splits.items()})
    loaded = timeseries_archive.load_cached_splits(tmp_path, 2, no_problem)
    for name, (x, y) in splits.items():
        assert loaded[name][0].dtype == np.float32 and np.array_equal(loaded[name][0], x)
        assert np.array_equal(loaded[name][1], y)


def test_a_pickled_npy_is_refused_not_unpickled(tmp_path):
    timeseries_archive.save_splits(tmp_path, splits_of())
    np.save(tmp_path / "trainy.npy", np.array([{"label": 1}] * 5, dtype=object), allow_pickle=True)
    with pytest.raises(SystemExit, match="trainy.npy cannot be read as a .npy array.*delete the cached"):
        timeseries_archive.load_cached_splits(tmp_path, 2, no_problem)


def test_a_save_interrupted_halfway_keeps_the_previous_files(tmp_path, monkeypatch):
    old = splits_of(seed=0)
    timeseries_archive.save_splits(tmp_path, old)
    real_save = np.save

    def torn_save(f, array):  # writes half of the new file, then the disk is full
        buffer = io.BytesIO()
        real_save(buffer, array)
        f.write(buffer.getvalue()[:len(buffer.getvalue()) // 2])
        f.flush()
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(np, "save", torn_save)
    with pytest.raises(OSError, match="No space left"):
        timeseries_archive.save_splits(tmp_path, splits_of(seed=1))
    monkeypatch.setattr(np, "save", real_save)
    loaded = timeseries_archive.load_cached_splits(tmp_path, 2, no_problem)
    assert all(np.array_equal(loaded[k][i], old[k][i]) for k in old for i in (0, 1))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{s}{v}.npy" for s in old for v in "xy")


def test_no_download_with_half_an_archive_never_calls_the_loader(tmp_path):
    write_problem(tmp_path / "raw", "BIDMC32RR", 4, 2, channels=2, length=5, regression=True)
    (tmp_path / "raw" / "BIDMC32RR" / "BIDMC32RR_TEST.ts").unlink()

    def loader(*args, **kwargs):
        pytest.fail("the loader (which downloads) was called")
    with pytest.raises(SystemExit, match="BIDMC32RR not found.*--no-download was given"):
        timeseries_archive.load_archive_problem(loader, "BIDMC32RR", tmp_path / "raw",
                                                health_data.how_to("RR"), download=False)
