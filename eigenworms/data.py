"""EigenWorms (UEA archive: 259 worms, 6 channels, 17984 steps, 5 classes).

Fetched and parsed by aeon (``load_classification``); the archive's train and test parts are merged
and split as the authors' follow-up code (LEM, 2022) does: ``train_test_split(test_size=0.3,
random_state=1234)``, then the 30% half/half into valid and test with the same call and seed
(181/39/39). Labels are encoded 0..4 (sorted class names). The split is cached as
trainx.npy, trainy.npy, validx.npy, ... in the data folder.
"""
import pathlib

import numpy as np
from aeon.datasets import load_classification
from sklearn.model_selection import train_test_split

from repro.batching import split_batches
from repro.timeseries_archive import load_archive_problem, load_cached_splits, save_splits

SPLIT_SEED = 1234
CHANNELS, CLASSES = 6, 5
HOW_TO = ("Without network: download EigenWorms.zip from https://timeseriesclassification.com "
          "(Multivariate archive), unzip it so that DIR/raw/EigenWorms/EigenWorms_TRAIN.ts and "
          "_TEST.ts exist, and pass --data-dir DIR; or pass a folder holding trainx.npy, trainy.npy, "
          "validx.npy, validy.npy, testx.npy, testy.npy.")


def split_like_lem(x, y):
    """70/15/15 by two seeded train_test_split calls, as the LEM code."""
    train_x, rest_x, train_y, rest_y = train_test_split(x, y, test_size=0.3, random_state=SPLIT_SEED)
    valid_x, test_x, valid_y, test_y = train_test_split(rest_x, rest_y, test_size=0.5,
                                                        random_state=SPLIT_SEED)
    return {"train": (train_x, train_y), "valid": (valid_x, valid_y), "test": (test_x, test_y)}


def label_problem(y):
    """Class labels must be whole numbers 0..4 (made by hand for the 2021 code they may be floats)."""
    if not np.issubdtype(y.dtype, np.number) or not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
        return f"expected class labels 0..{CLASSES - 1}, got values of dtype {y.dtype} that are not whole numbers"
    if y.size and (y.min() < 0 or y.max() >= CLASSES):
        return f"expected class labels 0..{CLASSES - 1}, got {y.min():g}..{y.max():g}"
    return None


def load_splits(data_dir, download=True):
    """Cached splits from data_dir, or made (and cached there) from the archive via aeon."""
    data_dir = pathlib.Path(data_dir)
    cached = load_cached_splits(data_dir, CHANNELS, label_problem)
    if cached is not None:
        return {name: (x, y.astype(np.int64)) for name, (x, y) in cached.items()}
    x, labels = load_archive_problem(load_classification, "EigenWorms", data_dir / "raw", HOW_TO,
                                     download)
    classes = np.unique(labels)  # sorted class names -> 0..4
    y = np.searchsorted(classes, labels).astype(np.int64)
    splits = split_like_lem(x, y)
    save_splits(data_dir, splits)
    return splits


def make_batches(splits, device, batch, seed):
    """(seq_len, batch, 6) inputs; training batches shuffled; valid and test each one batch (on the CPU,
    batches of the training batch: repro.batching.evaluation_batch)."""
    # (batch, seq, ch) -> (seq, batch, ch)
    return split_batches(splits, device, lambda x: x.permute(1, 0, 2), batch, None, seed)
