"""Time-series archive data (UEA classification, Monash regression) through aeon, merged and split
once, then cached as the .npy files the 2021 README told users to make:
trainx.npy, trainy.npy, validx.npy, validy.npy, testx.npy, testy.npy, with x of shape
(n, seq_len, channels) float32. A folder that already holds these files is used as is, after
checking their shapes and labels (errors name the file)."""
import pathlib

import numpy as np

from . import atomic

SPLITS = ("train", "valid", "test")


def cache_files(folder):
    folder = pathlib.Path(folder)
    return {split: (folder / f"{split}x.npy", folder / f"{split}y.npy") for split in SPLITS}


def _load(path):
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise SystemExit(f"{path} cannot be read as a .npy array ({err}); delete the cached split "
                         f"files in {path.parent} to rebuild them from the archive") from None


def load_cached_splits(folder, channels, check_targets):
    """{"train"|"valid"|"test": (x float32 (n, seq_len, channels), y)}, or None if not all six
    files are there. ``check_targets(y)`` returns a problem description or None."""
    files = cache_files(folder)
    if not all(x.exists() and y.exists() for x, y in files.values()):
        return None
    splits, lengths = {}, set()
    for split, (x_path, y_path) in files.items():
        x, y = _load(x_path), _load(y_path)
        if x.ndim != 3 or x.shape[2] != channels:
            raise SystemExit(f"{x_path}: expected (series, steps, {channels} channels), got shape "
                             f"{x.shape}; it is not this data set's cached split")
        if y.shape != (x.shape[0],):
            raise SystemExit(f"{y_path}: expected {x.shape[0]} targets (one per series in "
                             f"{x_path.name}), got shape {y.shape}")
        problem = check_targets(y)
        if problem:
            raise SystemExit(f"{y_path}: {problem}")
        lengths.add(x.shape[1])
        splits[split] = (x.astype(np.float32), y)
    if len(lengths) != 1:
        raise SystemExit(f"the cached splits in {folder} have different sequence lengths {sorted(lengths)}")
    return splits


def save_splits(folder, splits):
    pathlib.Path(folder).mkdir(parents=True, exist_ok=True)
    for split, (x_path, y_path) in cache_files(folder).items():
        for path, array in ((x_path, splits[split][0]), (y_path, splits[split][1])):
            with atomic.atomic_path(path) as tmp, open(tmp, "wb") as f:
                np.save(f, array)


def load_archive_problem(loader, name, raw_dir, how_to, download=True):
    """Merged train+test parts of archive problem ``name`` via aeon's ``loader``
    (load_classification / load_regression), which reads raw_dir/<name>/<name>_{TRAIN,TEST}.ts and
    downloads them there when absent (unless ``download`` is False). Returns x (n, seq_len,
    channels) float32 and y."""
    raw_dir = pathlib.Path(raw_dir)
    files = [raw_dir / name / f"{name}_{part}.ts" for part in ("TRAIN", "TEST")]
    if not download and not all(f.exists() for f in files):
        raise SystemExit(f"{name} not found: expected {files[0]} and {files[1].name}, and "
                         f"--no-download was given. {how_to}")
    try:
        x, y = loader(name, extract_path=str(raw_dir))
    except Exception as err:  # no network, archive moved, a partial download ...
        raise SystemExit(
            f"could not load {name}: {type(err).__name__}: {err}\n"
            f"aeon reads {files[0]} and _TEST.ts, and downloads them there from the time-series "
            f"archive on Zenodo when they are missing. {how_to}") from err
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 3:
        raise SystemExit(f"{name}: expected equal-length series (n, channels, length), got {x.shape}")
    return np.ascontiguousarray(x.transpose(0, 2, 1)), np.asarray(y)
