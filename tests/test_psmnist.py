"""psMNIST: the loader on tiny idx files written in the real format, on the real MNIST when present,
and train.py end to end (with --resume) through its command line."""
import gzip
import json

import numpy as np
import pytest
import torch

from psMNIST import data, train
from tiny_data import write_mnist


@pytest.fixture(params=[True, False], ids=["gzipped", "plain"])
def tiny_mnist(tmp_path, request):
    return write_mnist(tmp_path / "idx", gz=request.param)


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
    last = out.strip().splitlines()[-1]
    assert "resuming" in out and last.startswith("final test accuracy: ") and "at the best validation epoch" in last
    assert last.endswith("; paper 98.4% (std not confirmed); the 2021 repository's best run 98.4%")
    log = json.loads((run_dir / "log.json").read_text())
    assert [row["epoch"] for row in log] == [1, 2] and summary["epochs"] == 2

    # an uninterrupted 2-epoch run gives exactly the same log (model, optimiser, RNG, batch order)
    train.main(common + ["--epochs", "2", "--out-dir", str(tmp_path / "straight")])
    straight = json.loads((tmp_path / "straight" / "log.json").read_text())
    for a, b in zip(log, straight):
        assert a["train_loss"] == b["train_loss"] and a["valid_accuracy"] == b["valid_accuracy"]


def test_flat_folders_get_separate_caches(tmp_path):
    """Two idx folders with different contents never share (or reuse) an unzipped cache."""
    folders = [write_mnist(tmp_path / name, n_train=n, n_test=n, seed=i)
               for i, (name, n) in enumerate((("a", 30), ("b", 40)))]
    sizes = [len(data.load_splits(f, False, tmp_path / "cache", valid_size=5)["test"][0])
             for f in folders]
    assert sizes == [30, 40]


def _cache_files(cache_dir):
    return sorted(cache_dir.glob("from-idx-*/MNIST/raw/*"))


def test_interrupted_unzip_leaves_no_cache_file_and_the_next_run_works(tmp_path, monkeypatch):
    """Ctrl-C during the first unzip: nothing is left under the cache's name (it used to leave a
    0-byte file that broke every later run)."""
    source = write_mnist(tmp_path / "idx")
    real_decompress = gzip.decompress
    calls = []

    def interrupted(data):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_decompress(data)
    monkeypatch.setattr(gzip, "decompress", interrupted)
    with pytest.raises(KeyboardInterrupt):
        data.load_splits(source, False, tmp_path / "cache", valid_size=20)
    assert len(_cache_files(tmp_path / "cache")) == 2  # the two finished files, nothing half-written
    assert not list((tmp_path / "cache").rglob("*.tmp"))
    monkeypatch.setattr(gzip, "decompress", real_decompress)
    splits = data.load_splits(source, False, tmp_path / "cache", valid_size=20)
    assert len(splits["train"][0]) == 100


@pytest.mark.parametrize("damage", [lambda b: b"", lambda b: b[:-7], lambda b: b"\x00" * len(b)],
                         ids=["empty", "truncated", "zeroed"])
def test_a_damaged_cache_entry_is_rebuilt(tmp_path, damage):
    source = write_mnist(tmp_path / "idx")
    first = data.load_splits(source, False, tmp_path / "cache", valid_size=20)
    victim = _cache_files(tmp_path / "cache")[0]
    victim.write_bytes(damage(victim.read_bytes()))
    again = data.load_splits(source, False, tmp_path / "cache", valid_size=20)
    assert all(torch.equal(first[k][0], again[k][0]) for k in first)


def _replace(folder, name, payload):
    for old in folder.glob(name + "*"):
        old.unlink()
    (folder / (name + ".gz")).write_bytes(payload)


@pytest.mark.parametrize("name,payload,problem", [
    ("train-images-idx3-ubyte", b"this is not gzip", "cannot be decompressed"),
    ("train-images-idx3-ubyte", b"", "cannot be decompressed|too short"),
    ("t10k-labels-idx1-ubyte", "truncated-gzip", "cannot be decompressed"),
    ("t10k-images-idx3-ubyte", "labels-as-images", "holds labels .*expected images"),
    ("train-labels-idx1-ubyte", "labels-out-of-range", "label 12"),
    ("train-labels-idx1-ubyte", "wrong-count",
     "wrong count: train-images-idx3-ubyte holds 120 images but train-labels-idx1-ubyte holds 99"),
])
def test_bad_source_files_are_named_with_the_problem(tmp_path, name, payload, problem):
    folder = write_mnist(tmp_path / "idx")
    if payload == "truncated-gzip":
        payload = (folder / (name + ".gz")).read_bytes()[:-20]
    elif payload == "labels-as-images":
        payload = gzip.compress(gzip.decompress((folder / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    elif payload == "labels-out-of-range":
        labels = np.arange(120) % 10
        labels[5] = 12
        payload = gzip.compress(bytes([0, 0, 8, 1]) + (120).to_bytes(4, "big") + labels.astype(np.uint8).tobytes())
    elif payload == "wrong-count":
        payload = gzip.compress(bytes([0, 0, 8, 1]) + (99).to_bytes(4, "big") + bytes(99))
    _replace(folder, name, payload)
    with pytest.raises(SystemExit, match=problem) as err:
        data.load_splits(folder, False, tmp_path / "cache", valid_size=20)
    assert name in str(err.value)
    if not problem.startswith("wrong count"):  # a bad file itself is never cached
        assert not [p for p in _cache_files(tmp_path / "cache") if p.name == name]


def test_a_bad_file_in_a_torchvision_root_is_named(tmp_path):
    raw = write_mnist(tmp_path / "root" / "MNIST" / "raw", gz=False)
    dims = b"".join(int(d).to_bytes(4, "big") for d in (10, 28, 28))
    (raw / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + dims + bytes(20))
    with pytest.raises(SystemExit, match="t10k-images-idx3-ubyte.*truncated.*Delete it"):
        data.load_splits(tmp_path / "root", False, tmp_path / "cache")
