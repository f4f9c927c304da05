"""Mini-batches drawn from data already in memory (on the training device where it fits), so that
feeding the GPU is a few indexing kernels per step instead of per-sample Python transforms."""
import torch
from torch.utils.data import random_split


class Batches:
    """Iterates over ``make_batch(indices)`` for consecutive groups of ``batch_size`` item indices,
    reshuffled each epoch by its own seeded generator when ``shuffle``; its state is checkpointed so
    a resumed run draws the same batches as an uninterrupted one."""

    def __init__(self, n_items, batch_size, make_batch, shuffle=False, seed=0):
        if n_items < 1 or batch_size < 1:
            raise ValueError(f"need n_items >= 1 and batch_size >= 1, got {n_items}, {batch_size}")
        self.n_items, self.batch_size, self.make_batch = n_items, batch_size, make_batch
        self.shuffle = shuffle
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self):
        return -(-self.n_items // self.batch_size)

    def __iter__(self):
        if self.shuffle:
            order = torch.randperm(self.n_items, generator=self.generator)
        else:
            order = torch.arange(self.n_items)
        for start in range(0, self.n_items, self.batch_size):
            yield self.make_batch(order[start:start + self.batch_size])

    def state_dict(self):
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state):
        self.generator.set_state(state["generator"])


def split_off_valid(inputs, targets, valid_size, seed):
    """{"train", "valid"} -> (inputs, targets): a ``random_split`` of the items with a generator
    seeded ``seed``, ``valid_size`` of them for validation. This is the 2021 code's method (a
    random_split of the training set) but not its drawn indices: those came from the script's global
    RNG and were not published, so our valid set is a different (seeded, reproducible) draw."""
    n = len(inputs)
    if not 0 < valid_size < n:
        raise SystemExit(f"--valid-size {valid_size} must be between 1 and {n - 1}")
    train_idx, valid_idx = random_split(range(n), [n - valid_size, valid_size],
                                        generator=torch.Generator().manual_seed(seed))
    return {name: (inputs[list(idx)], targets[list(idx)])
            for name, idx in (("train", train_idx), ("valid", valid_idx))}


def tensor_batches(inputs, targets, batch_size, to_model_input, shuffle=False, seed=0):
    """Batches of (to_model_input(inputs[idx]), targets[idx]) from two aligned tensors."""
    def make_batch(idx):
        idx = idx.to(inputs.device)
        return to_model_input(inputs[idx]), targets[idx]
    return Batches(len(inputs), batch_size, make_batch, shuffle, seed)


def evaluation_batch(test_batch, batch, n_items, device):
    """Items per evaluation call: ``test_batch`` (None: the whole split) on a GPU; on the CPU at most
    ``batch``, the training batch. Per-sample results are the same (up to float rounding), and on the
    CPU a big evaluation batch is slow: its activations (psMNIST's 1000: 800 MB a layer) are fresh
    memory on every call, and first touches of fresh pages cost more than the arithmetic."""
    size = test_batch or n_items
    return min(size, batch) if torch.device(device).type == "cpu" else size


def split_batches(splits, device, to_model_input, batch, test_batch=None, seed=0):
    """{"train", "valid", "test"} -> Batches on ``device``: train shuffled by a generator seeded
    ``seed``; valid and test in order, ``evaluation_batch`` items per batch."""
    on_device = {name: (torch.as_tensor(x).to(device), torch.as_tensor(y).to(device))
                 for name, (x, y) in splits.items()}
    out = {"train": tensor_batches(*on_device["train"], batch, to_model_input, shuffle=True, seed=seed)}
    for name in ("valid", "test"):
        inputs, targets = on_device[name]
        out[name] = tensor_batches(inputs, targets, evaluation_batch(test_batch, batch, len(inputs), device),
                                   to_model_input)
    return out
