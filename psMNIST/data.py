"""Permuted sequential MNIST (paper Sec. 4): each 28x28 image is read pixel by pixel as a sequence of
784 steps of one feature, in a fixed random order: the 2021 code's (``torch.manual_seed(5544);
torch.randperm(784)``), drawn here from a generator of its own seeded 5544, which gives the same
order and leaves the global random-number generator alone.

Data comes from torchvision's MNIST (pixels scaled to [0, 1], as ``ToTensor()``); the training set
is split 57000/3000 into train/valid by ``random_split`` with a seeded generator. The images stay in
memory (on the training device) as uint8 and are scaled, permuted and laid out
(seq_len, batch, 1) per batch.

Every idx file is checked before use (gzip integrity, idx header, kind, size, image/label counts,
labels 0..9); errors name the file. Files from a plain folder are unzipped atomically into a cache
keyed on the source files, and a bad cache entry is rebuilt.
"""
import gzip
import pathlib
import zlib

import numpy as np
import torch
from torchvision.datasets import MNIST

from repro import atomic
from repro.batching import split_batches, split_off_valid
from repro.caching import source_key

PERMUTATION_SEED = 5544
IMAGES, LABELS = "images", "labels"
IDX_FILES = {"train-images-idx3-ubyte": IMAGES, "train-labels-idx1-ubyte": LABELS,
             "t10k-images-idx3-ubyte": IMAGES, "t10k-labels-idx1-ubyte": LABELS}
PAIRS = [("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")]


class BadIdxFile(ValueError):
    """An idx file that is not what MNIST needs; the message says what is wrong."""


def paper_permutation():
    return torch.randperm(784, generator=torch.Generator().manual_seed(PERMUTATION_SEED))


def idx_problem(data, kind, size=None):
    """None if ``data`` (the bytes of an idx file, or its first bytes when ``size`` gives the file's
    length) is a valid MNIST file of ``kind``, else what is wrong."""
    size = len(data) if size is None else size
    if size < 8:
        return f"{size} bytes is too short for an idx file"
    if data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        return "not an idx file of unsigned bytes (the first bytes should be 00 00 08)"
    ndim = data[3]
    if ndim not in (1, 3):
        return f"an idx file with {ndim} dimensions; MNIST has 3 (images) or 1 (labels)"
    found = IMAGES if ndim == 3 else LABELS
    if found != kind:
        return f"holds {found} ({ndim}-dimensional), expected {kind}"
    header = 4 + 4 * ndim
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    if kind == IMAGES and dims[1:] != [28, 28]:
        return f"holds images of {dims[1]}x{dims[2]} pixels, expected 28x28"
    expected = header + int(np.prod(dims))
    if size != expected:
        return f"has {size} bytes but its header ({dims}) needs {expected}: it is truncated or padded"
    if kind == LABELS and dims[0] and max(data[header:]) > 9:
        return f"holds label {max(data[header:])}; MNIST labels are 0..9"
    return None


def read_idx_source(path, kind):
    """The raw idx bytes of ``path`` (gzipped or not), checked; BadIdxFile names the problem."""
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as err:  # not gzip, truncated archive, unreadable
        raise BadIdxFile(f"cannot be decompressed ({type(err).__name__}: {err})") from None
    problem = idx_problem(data, kind)
    if problem:
        raise BadIdxFile(problem)
    return data


def _count(data):
    return int.from_bytes(data[4:8], "big")


def unpacked_idx_problem(path, kind):
    """(problem or None, item count) of an uncompressed idx file on disk. An image file is checked
    by its header and size alone (torchvision reads it next); a label file is read to check its values."""
    with open(path, "rb") as f:
        head = f.read() if kind == LABELS else f.read(16)
    return idx_problem(head, kind, size=path.stat().st_size), _count(head)


def check_counts(counts, where):
    for images, labels in PAIRS:
        if counts[images] != counts[labels]:
            raise SystemExit(f"MNIST in {where}, wrong count: {images} holds {counts[images]} images "
                             f"but {labels} holds {counts[labels]} labels; the two files do not "
                             "belong together")


def _raw_folder(root):
    return pathlib.Path(root) / "MNIST" / "raw"


def _find_idx_file(folder, name):
    for candidate in (folder / name, folder / (name + ".gz")):
        if candidate.exists():
            return candidate
    return None


def _check_torchvision_root(raw):
    """Check the four files of a torchvision root (downloaded or placed by the user)."""
    counts = {}
    for name, kind in IDX_FILES.items():
        problem, counts[name] = unpacked_idx_problem(raw / name, kind)
        if problem:
            raise SystemExit(f"MNIST file {raw / name}: {problem}. Delete it and rerun to download it "
                             "again, or replace it with the original file.")
    check_counts(counts, raw)


def unzip_into_cache(found, cache_dir):
    """Copy (unzipping .gz) the four idx files into cache_dir/from-idx-<key>/MNIST/raw/, atomically;
    cache entries that fail the check are rebuilt from their sources. Returns that root."""
    root = pathlib.Path(cache_dir) / f"from-idx-{source_key(found.values())}"
    raw = _raw_folder(root)
    raw.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name, src in found.items():
        kind, target = IDX_FILES[name], raw / name
        if target.exists():
            problem, counts[name] = unpacked_idx_problem(target, kind)
            if problem is None:
                continue
            print(f"rebuilding the damaged cache file {target}")
        try:
            data = read_idx_source(src, kind)
        except BadIdxFile as err:
            raise SystemExit(f"MNIST file {src}: {err}. Replace it with the original file "
                             "(or drop --data-dir to let torchvision download MNIST).") from None
        atomic.write_bytes(target, data)
        counts[name] = _count(data)
    check_counts(counts, pathlib.Path(next(iter(found.values()))).parent)
    return root


def mnist_root(data_dir, download, cache_dir):
    """A checked torchvision MNIST root for ``data_dir``: a torchvision root (holding MNIST/raw/), or
    a folder with the four standard idx files, gzipped or not (unzipped once into ``cache_dir``).
    Downloads with torchvision into ``data_dir`` when allowed and nothing is found."""
    data_dir = pathlib.Path(data_dir)
    raw = _raw_folder(data_dir)
    if all((raw / name).exists() for name in IDX_FILES):
        _check_torchvision_root(raw)
        return data_dir
    found = {name: _find_idx_file(data_dir, name) for name in IDX_FILES}
    if all(found.values()):
        return unzip_into_cache(found, cache_dir)
    if not download:
        raise SystemExit(f"MNIST not found in {data_dir} and --no-download was given.\n" + _HOW_TO)
    try:
        for train in (True, False):
            MNIST(str(data_dir), train=train, download=True)
    except Exception as err:  # no network, mirror down, disk full ...
        raise SystemExit(f"could not download MNIST into {data_dir}: {err}\n" + _HOW_TO) from err
    _check_torchvision_root(raw)
    return data_dir


_HOW_TO = ("Either let torchvision download it (drop --no-download; needs internet), or pass "
           "--data-dir DIR where DIR holds the four files " + ", ".join(f + "[.gz]" for f in IDX_FILES)
           + ", or a torchvision root with MNIST/raw/ inside.")


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
