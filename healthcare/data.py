"""Healthcare: BIDMC32RR (respiratory rate) and BIDMC32HR (heart rate) from the Monash/UEA/UCR
time-series extrinsic regression archive: 7949 series, 2 channels, 4000 steps, one real target.

Fetched and parsed by aeon (``load_regression``); the archive's train and test parts are merged and
split as the authors' follow-up code (LEM, 2022) does:
``random_split(data, [5565, 2384], generator=torch.Generator().manual_seed(123456))``, then the
second part into test and valid with ``[1192, 1192]`` and the same seeded generator. (For other
sizes, e.g. tests, the same rule: test = valid = round(0.15 n), train the rest.) Cached as
trainx.npy, ... under <data-dir>/RR/ and <data-dir>/HR/.
"""
import pathlib

import numpy as np
import torch
from aeon.datasets import load_regression
from torch.utils.data import random_split

from repro.batching import split_batches
from repro.timeseries_archive import load_archive_problem, load_cached_splits, save_splits

SPLIT_SEED = 123456
PROBLEMS = {"RR": "BIDMC32RR", "HR": "BIDMC32HR"}
CHANNELS = 2


def how_to(name):
    problem = PROBLEMS[name]
    return (f"Without network: download {problem}.zip from the Monash regression archive "
            f"(http://tseregression.org, on Zenodo), unzip it so that "
            f"DIR/raw/{problem}/{problem}_TRAIN.ts and _TEST.ts exist, and pass --data-dir DIR; or "
            f"put trainx.npy, trainy.npy, validx.npy, validy.npy, testx.npy, testy.npy in DIR/{name}/.")


def split_like_lem(x, y):
    n = len(x)
    half = round(0.15 * n)  # 1192 for the 7949 series: [5565, 2384] then [1192, 1192]
    train_idx, rest_idx = random_split(range(n), [n - 2 * half, 2 * half],
                                       generator=torch.Generator().manual_seed(SPLIT_SEED))
    test_idx, valid_idx = random_split(list(rest_idx), [half, half],
                                       generator=torch.Generator().manual_seed(SPLIT_SEED))
    pick = lambda idx: (x[list(idx)], y[list(idx)])  # noqa: E731
    return {"train": pick(train_idx), "valid": pick(valid_idx), "test": pick(test_idx)}


def target_problem(y):
    if not np.issubdtype(y.dtype, np.number) or not np.all(np.isfinite(y)):
        return f"expected finite real targets, got dtype {y.dtype} with non-finite or non-numeric values"
    return None


def load_splits(data_dir, name, download=True):
    """Cached splits from data_dir/name, or made (and cached there) from the archive via aeon."""
    if name not in PROBLEMS:
        raise SystemExit(f"--name must be one of {sorted(PROBLEMS)}, got {name!r}")
    data_dir = pathlib.Path(data_dir)
    cached = load_cached_splits(data_dir / name, CHANNELS, target_problem)
    if cached is not None:
        return {split: (x, y.astype(np.float32)) for split, (x, y) in cached.items()}
    x, y = load_archive_problem(load_regression, PROBLEMS[name], data_dir / "raw", how_to(name),
                                download)
    splits = split_like_lem(x, y.astype(np.float32))
    save_splits(data_dir / name, splits)
    return splits


def make_batches(splits, device, batch, test_batch, seed):
    """(4000, batch, 2) inputs, float targets; training batches shuffled, valid/test in order."""
    # (batch, seq, ch) -> (seq, batch, ch)
    return split_batches(splits, device, lambda x: x.permute(1, 0, 2), batch, test_batch, seed)
