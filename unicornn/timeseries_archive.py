"""Time-series archive data (UEA classification, Monash regression) through aeon, merged and split
once, then cached as the .npy files the 2021 README told users to make:
trainx.npy, trainy.npy, validx.npy, validy.npy, testx.npy, testy.npy, with x of shape
(n, seq_len, channels) float32. A folder that already holds these files is used as is."""
import pathlib

import numpy as np

SPLITS = ("train", "valid", "test")


def cache_files(folder):
    folder = pathlib.Path(folder)
    return {split: (folder / f"{split}x.npy", folder / f"{split}y.npy") for split in SPLITS}


def load_cached_splits(folder):
    """{"train"|"valid"|"test": (x float32 (n, seq_len, channels), y)} or None if not all there."""
    files = cache_files(folder)
    if not all(x.exists() and y.exists() for x, y in files.values()):
        return None
    return {split: (np.load(x).astype(np.float32), np.load(y)) for split, (x, y) in files.items()}


def save_splits(folder, splits):
    pathlib.Path(folder).mkdir(parents=True, exist_ok=True)
    for split, (x_path, y_path) in cache_files(folder).items():
        for path, array in ((x_path, splits[split][0]), (y_path, splits[split][1])):
            tmp = path.with_name(path.stem + ".tmp.npy")
            np.save(tmp, array)
            tmp.replace(path)


def load_archive_problem(loader, name, raw_dir, how_to):
    """Merged train+test parts of archive problem ``name`` via aeon's ``loader``
    (load_classification / load_regression), which reads raw_dir/<name>/<name>_{TRAIN,TEST}.ts and
    downloads them there when absent. Returns x (n, seq_len, channels) float32 and y."""
    raw_dir = pathlib.Path(raw_dir)
    try:
        x, y = loader(name, extract_path=str(raw_dir))
    except Exception as err:  # no network, archive moved, a partial download ...
        raise SystemExit(
            f"could not load {name}: {type(err).__name__}: {err}\n"
            f"aeon reads {raw_dir / name / (name + '_TRAIN.ts')} and _TEST.ts, and downloads them "
            f"there from the time-series archive on Zenodo when they are missing. {how_to}") from err
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 3:
        raise SystemExit(f"{name}: expected equal-length series (n, channels, length), got {x.shape}")
    return np.ascontiguousarray(x.transpose(0, 2, 1)), np.asarray(y)
