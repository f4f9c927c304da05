"""Noise-padded CIFAR-10 (paper Sec. 4): each image is read row by row, 32 steps of 96 features
(the 3 channels' 32 pixels of that row: ``img.permute(1, 0, 2).reshape(32, 96)``), followed by 968
steps of Gaussian noise, 1000 steps in all. The noise is one fixed N(0, 1) tensor of shape
(968, 96), the same for every sample: the 2021 code's method. Its values are not the 2021 ones: that
script seeded 12345, built the model (which drew its initial weights from the same generator) and
only then drew the noise; we draw it first from a generator of its own seeded 12345, so it does not
depend on the model's size and leaves the global random-number generator alone.

Data comes from torchvision's CIFAR10 (pixels scaled to [0, 1], as ``ToTensor()``); the training
set is split 48000/2000 into train/valid by ``random_split`` with a seeded generator. Images stay in
memory (on the training device) as uint8 and are scaled, laid out and padded per batch.
"""
import torch
from torchvision.datasets import CIFAR10

from repro.batching import split_batches, split_off_valid

NOISE_SEED = 12345
ROWS, FEATURES, NOISE_STEPS = 32, 96, 968


def paper_noise():
    return torch.randn(NOISE_STEPS, FEATURES, generator=torch.Generator().manual_seed(NOISE_SEED))


def _dataset(data_dir, train, download):
    try:
        return CIFAR10(str(data_dir), train=train, download=download)
    except RuntimeError as err:  # torchvision: "Dataset not found or corrupted"
        raise SystemExit(
            f"CIFAR-10 not found in {data_dir} ({err}). Let torchvision download it (drop "
            "--no-download; needs internet), or pass --data-dir DIR where DIR/cifar-10-batches-py/ "
            "holds the python pickles (data_batch_1..5, test_batch, batches.meta) from "
            "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz") from err
    except OSError as err:  # download failed: no network
        raise SystemExit(f"could not download CIFAR-10 into {data_dir}: {err}. Download "
                         "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz, extract it into "
                         "DIR and pass --data-dir DIR") from err


def load_splits(data_dir, download, valid_size=2000, split_seed=NOISE_SEED):
    """{"train", "valid", "test"} -> (uint8 images (n, 3, 32, 32), int64 labels (n,)) on the CPU."""
    train, test = _dataset(data_dir, True, download), _dataset(data_dir, False, download)
    images = torch.from_numpy(train.data).permute(0, 3, 1, 2)  # (n, 32, 32, 3) HWC -> CHW
    splits = split_off_valid(images, torch.tensor(train.targets), valid_size, split_seed)
    splits["test"] = (torch.from_numpy(test.data).permute(0, 3, 1, 2), torch.tensor(test.targets))
    return splits


def to_sequence(images, noise):
    """uint8 images (batch, 3, 32, 32) -> (1000, batch, 96): 32 rows of 3x32 pixels in [0, 1],
    then the fixed noise (968, 96) repeated for every sample."""
    batch = images.shape[0]
    rows = (images.float() / 255.0).permute(2, 0, 1, 3).reshape(ROWS, batch, FEATURES)
    return torch.cat([rows, noise.unsqueeze(1).expand(NOISE_STEPS, batch, FEATURES)], 0)


def make_batches(splits, noise, device, batch, test_batch, seed):
    noise = noise.to(device)
    return split_batches(splits, device, lambda images: to_sequence(images, noise), batch,
                         test_batch, seed)
