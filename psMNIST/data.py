"""Permuted sequential MNIST (paper Sec. 4): each 28x28 image is read pixel by pixel as a sequence of
784 steps of one feature, in a fixed random order drawn as in the 2021 code
(``torch.manual_seed(5544); torch.randperm(784)``).

Data comes from torchvision's MNIST (pixels scaled to [0, 1], as ``ToTensor()``); the training set
is split 57000/3000 into train/valid by ``random_split`` with a seeded generator. The images stay in
memory (on the training device) as uint8 and are scaled, permuted and laid out
(seq_len, batch, 1) per batch.
"""
import hashlib
import pathlib
import shutil

import torch
from torchvision.datasets import MNIST
from torchvision.datasets.utils import extract_archive

from unicornn.batching import split_batches, split_off_valid

PERMUTATION_SEED = 5544
IDX_FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


def paper_permutation():
    torch.manual_seed(PERMUTATION_SEED)
    return torch.randperm(784)


def _raw_folder(root):
    return pathlib.Path(root) / "MNIST" / "raw"


def _find_idx_file(folder, name):
    for candidate in (folder / name, folder / (name + ".gz")):
        if candidate.exists():
            return candidate
    return None


def mnist_root(data_dir, download, cache_dir):
    """A torchvision MNIST root for ``data_dir``, which may be a torchvision root (holding
    MNIST/raw/) or a folder with the four standard idx files, gzipped or not (copied, unzipped, once
    into ``cache_dir``/from-idx-<digest of the files' paths, sizes and times>/MNIST/raw). Downloads with torchvision when allowed and nothing is found."""
    data_dir = pathlib.Path(data_dir)
    if all((_raw_folder(data_dir) / name).exists() for name in IDX_FILES):
        return data_dir
    found = [_find_idx_file(data_dir, name) for name in IDX_FILES]
    if all(found):
        # one cache per source folder and file version, so another folder never reads stale files
        key = "|".join(f"{p.resolve()}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in found)
        cache_dir = pathlib.Path(cache_dir) / f"from-idx-{hashlib.sha1(key.encode()).hexdigest()[:12]}"
        raw = _raw_folder(cache_dir)
        raw.mkdir(parents=True, exist_ok=True)
        for src, name in zip(found, IDX_FILES):
            if not (raw / name).exists():
                if src.suffix == ".gz":
                    extract_archive(str(src), str(raw))  # -> raw/<name>
                else:
                    shutil.copyfile(src, raw / name)
        return cache_dir
    if download:
        try:
            MNIST(str(data_dir), train=True, download=True)
            MNIST(str(data_dir), train=False, download=True)
            return data_dir
        except Exception as err:  # no network, mirror down, disk full ...
            raise SystemExit(f"could not download MNIST into {data_dir}: {err}\n" + _HOW_TO) from err
    raise SystemExit(f"MNIST not found in {data_dir} and --no-download was given.\n" + _HOW_TO)


_HOW_TO = ("Either let torchvision download it (drop --no-download; needs internet), or pass "
           "--data-dir DIR where DIR holds the four files " + ", ".join(f + "[.gz]" for f in IDX_FILES)
           + " (e.g. ../shared/data/mnist), or a torchvision root with MNIST/raw/ inside.")


def load_splits(data_dir, download, cache_dir, valid_size=3000, split_seed=PERMUTATION_SEED):
    """{"train", "valid", "test"} -> (uint8 images (n, 784), int64 labels (n,)) on the CPU."""
    root = str(mnist_root(data_dir, download, cache_dir))
    train, test = MNIST(root, train=True), MNIST(root, train=False)
    splits = split_off_valid(train.data.reshape(len(train), 784), train.targets, valid_size, split_seed)
    splits["test"] = (test.data.reshape(len(test), 784), test.targets)
    return splits


def to_sequence(images, permutation):
    """uint8 images (batch, 784) -> permuted pixel sequences in [0, 1] of shape (784, batch, 1)."""
    return (images[:, permutation].float() / 255.0).t().unsqueeze(-1)


def make_batches(splits, permutation, device, batch, test_batch, seed):
    """Training batches (shuffled, seeded) and in-order valid/test batches, all on ``device``."""
    permutation = permutation.to(device)
    return split_batches(splits, device, lambda images: to_sequence(images, permutation), batch,
                         test_batch, seed)
