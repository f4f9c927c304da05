"""psMNIST: the loader on tiny idx files written in the real format, on the real MNIST when present,
and train.py end to end (with --resume) through its command line."""
import gzip
import json

import numpy as np
import pytest
import torch

from psMNIST import data, train


def write_idx(path, array, gz):
    """The MNIST idx format: magic (0, 0, type 0x08 = ubyte, ndim), big-endian dims, then data."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)


@pytest.fixture(params=[True, False], ids=["gzipped", "plain"])
def tiny_mnist(tmp_path, request):
    rng = np.random.default_rng(0)
    folder = tmp_path / "idx"
    folder.mkdir()
    for prefix, n in (("train", 120), ("t10k", 30)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)), request.param)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10, request.param)
    return folder


def test_loader_on_tiny_idx_files(tiny_mnist, tmp_path):
    splits = data.load_splits(tiny_mnist, download=False, cache_dir=tmp_path / "cache", valid_size=20)
    assert [len(splits[k][0]) for k in ("train", "valid", "test")] == [100, 20, 30]
    assert splits["train"][0].shape == (100, 784) and splits["train"][0].dtype == torch.uint8
    # the split is a seeded partition of the training set
    again = data.load_splits(tiny_mnist, download=False, cache_dir=tmp_path / "cache", valid_size=20)
    assert torch.equal(splits["valid"][0], again["valid"][0])
    all_labels = torch.cat([splits["train"][1], splits["valid"][1]]).sort().values
    assert torch.equal(all_labels, (torch.arange(120) % 10).sort().values)


def test_permutation_and_sequence_layout():
    perm = data.paper_permutation()
    assert torch.equal(perm, data.paper_permutation())
    assert torch.equal(perm.sort().values, torch.arange(784))
    assert not torch.equal(perm, torch.arange(784))
    images = torch.randint(0, 256, (5, 784), dtype=torch.uint8)
    seq = data.to_sequence(images, perm)
    assert seq.shape == (784, 5, 1)
    # step t of sample b is pixel perm[t] of image b, scaled to [0, 1] like ToTensor()
    assert torch.allclose(seq[10, 3, 0], images[3, perm[10]].float() / 255)


def test_missing_data_without_download_says_what_to_do(tmp_path):
    with pytest.raises(SystemExit, match="--data-dir DIR"):
        data.load_splits(tmp_path, download=False, cache_dir=tmp_path / "cache")


def test_real_mnist_splits_and_label_counts(mnist_dir, tmp_path):
    splits = data.load_splits(mnist_dir, download=False, cache_dir=tmp_path)
    assert [len(splits[k][1]) for k in ("train", "valid", "test")] == [57000, 3000, 10000]
    train_and_valid = torch.cat([splits["train"][1], splits["valid"][1]])
    assert torch.bincount(train_and_valid).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918,
                                                        6265, 5851, 5949]
    assert torch.bincount(splits["test"][1]).tolist() == [980, 1135, 1032, 1010, 982, 892, 958,
                                                          1028, 974, 1009]


def test_short_cpu_training_on_real_mnist_beats_chance(mnist_dir, tmp_path):
    summary = train.main(["--data-dir", str(mnist_dir), "--cache-dir", str(tmp_path / "cache"),
                          "--device", "cpu", "--nhid", "32",
                          "--nlayers", "1", "--batch", "64", "--epochs", "1",
                          "--max-train-batches", "60", "--test-batch", "2000",
                          "--out-dir", str(tmp_path / "run"), "--no-progress"])
    assert summary["test_accuracy"] > 25.0  # chance is 10%


def test_train_cli_end_to_end_and_resume(tiny_mnist, tmp_path, capsys):
    run_dir = tmp_path / "run"
    common = ["--data-dir", str(tiny_mnist), "--cache-dir", str(tmp_path / "cache"),
              "--valid-size", "20", "--nhid", "8", "--nlayers", "2",
              "--batch", "16", "--test-batch", "50", "--device", "cpu", "--no-progress",
              "--max-train-batches", "2"]
    train.main(common + ["--epochs", "1", "--out-dir", str(run_dir)])
    assert {p.name for p in run_dir.iterdir()} >= {"args.json", "log.csv", "log.json",
                                                   "checkpoint.pt", "best_model.pt", "summary.json"}
    assert json.loads((run_dir / "args.json").read_text())["alpha"] == 30.65
    summary = train.main(["--resume", str(run_dir), "--epochs", "2", "--no-progress"])
    out = capsys.readouterr().out
    assert "resuming" in out and "final test accuracy" in out and "(paper: 98.4%)" in out
    log = json.loads((run_dir / "log.json").read_text())
    assert [row["epoch"] for row in log] == [1, 2] and summary["epochs"] == 2

    # an uninterrupted 2-epoch run gives exactly the same log (model, optimiser, RNG, batch order)
    train.main(common + ["--epochs", "2", "--out-dir", str(tmp_path / "straight")])
    straight = json.loads((tmp_path / "straight" / "log.json").read_text())
    for a, b in zip(log, straight):
        assert a["train_loss"] == b["train_loss"] and a["valid_accuracy"] == b["valid_accuracy"]


def test_flat_folders_get_separate_caches(tmp_path):
    """Two idx folders with different contents never share (or reuse) an unzipped cache."""
    rng = np.random.default_rng(1)
    folders = []
    for name, n in (("a", 30), ("b", 40)):
        folder = tmp_path / name
        folder.mkdir()
        for prefix in ("train", "t10k"):
            write_idx(folder / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)), True)
            write_idx(folder / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10, True)
        folders.append(folder)
    sizes = [len(data.load_splits(f, False, tmp_path / "cache", valid_size=5)["test"][0])
             for f in folders]
    assert sizes == [30, 40]
