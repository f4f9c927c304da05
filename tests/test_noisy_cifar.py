"""Noise-padded CIFAR-10: the loader on tiny python pickles written in CIFAR-10's real on-disk
format, the row layout and noise padding, and train.py end to end with --resume."""
import json
import os

import pytest
import torch
import torchvision.datasets.cifar

from noisy_cifar import data, train
from tiny_data import write_cifar


@pytest.fixture
def tiny_cifar(tmp_path, monkeypatch):
    """cifar-10-batches-py/ with 5 training batches of 20 images and a test batch of 15."""
    write_cifar(tmp_path)
    # our files cannot match the real archive's MD5 sums: check that they exist instead
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity",
                        lambda path, md5=None: os.path.isfile(path))
    return tmp_path


def test_loader_splits_and_layout(tiny_cifar):
    splits = data.load_splits(tiny_cifar, download=False, valid_size=10)
    assert [len(splits[k][0]) for k in ("train", "valid", "test")] == [90, 10, 15]
    images = splits["test"][0]
    assert images.shape == (15, 3, 32, 32) and images.dtype == torch.uint8
    noise = data.paper_noise()
    assert noise.shape == (968, 96) and torch.equal(noise, data.paper_noise())
    seq = data.to_sequence(images[:4], noise)
    assert seq.shape == (1000, 4, 96)
    # step r of sample b is row r of image b, channels side by side (img.permute(1, 0, 2))
    for b in range(4):
        expected = (images[b].float() / 255).permute(1, 0, 2).reshape(32, 96)
        assert torch.equal(seq[:32, b], expected)
        assert torch.equal(seq[32:, b], noise)


def test_pixels_match_torchvision_to_tensor(tiny_cifar):
    from torchvision.transforms.functional import to_tensor
    dataset = torchvision.datasets.CIFAR10(str(tiny_cifar), train=False)
    splits = data.load_splits(tiny_cifar, download=False, valid_size=10)
    assert torch.equal(splits["test"][0][3].float() / 255, to_tensor(dataset[3][0]))


def test_missing_data_says_what_to_do(tmp_path):
    with pytest.raises(SystemExit, match="cifar-10-batches-py"):
        data.load_splits(tmp_path, download=False)


def test_train_cli_end_to_end_and_resume(tiny_cifar, tmp_path, capsys):
    run_dir = tmp_path / "run"
    common = ["--data-dir", str(tiny_cifar), "--valid-size", "10", "--nhid", "8", "--nlayers", "2",
              "--batch", "16", "--test-batch", "16", "--device", "cpu", "--no-progress",
              "--max-train-batches", "2"]
    train.main(common + ["--epochs", "1", "--out-dir", str(run_dir)])
    assert json.loads((run_dir / "args.json").read_text())["lr"] == 0.00314
    summary = train.main(["--resume", str(run_dir), "--epochs", "2", "--no-progress"])
    out = capsys.readouterr().out
    assert "resuming" in out and summary["epochs"] == 2
    assert out.strip().splitlines()[-1].endswith(
        "; paper 62.4% (std not confirmed); the 2021 repository's best run 62.4%")
    assert len(json.loads((run_dir / "log.json").read_text())) == 2
