"""Mini-batches (repro/batching.py): every item exactly once per epoch (the last batch short), a new
seeded order each epoch that a checkpointed state reproduces, inputs kept with their targets, the
valid split drawn by the seeded random_split the docstring names, valid/test in order."""
import pytest
import torch
from torch.utils.data import random_split

from repro.batching import Batches, evaluation_batch, split_batches, split_off_valid, tensor_batches


def epoch(batches):
    return [idx.tolist() for idx in batches]


def test_every_item_once_in_order_with_a_short_last_batch():
    batches = Batches(10, 4, lambda idx: idx)
    assert len(batches) == 3
    assert epoch(batches) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert len(Batches(8, 4, lambda idx: idx)) == 2 and len(Batches(3, 5, lambda idx: idx)) == 1


@pytest.mark.parametrize("n,batch_size", [(0, 4), (5, 0)])
def test_empty_batches_are_refused(n, batch_size):
    with pytest.raises(ValueError, match="need n_items >= 1 and batch_size >= 1"):
        Batches(n, batch_size, lambda idx: idx)


def test_shuffled_epochs_are_new_seeded_permutations():
    batches = Batches(50, 8, lambda idx: idx, shuffle=True, seed=3)
    epochs = [epoch(batches) for _ in range(3)]
    for order in epochs:
        assert [len(b) for b in order] == [8] * 6 + [2]
        assert sorted(sum(order, [])) == list(range(50))
    assert epochs[0] != epochs[1] != epochs[2] and epochs[0] != list(range(50))
    assert epoch(Batches(50, 8, lambda idx: idx, shuffle=True, seed=3)) == epochs[0]
    assert epoch(Batches(50, 8, lambda idx: idx, shuffle=True, seed=4)) != epochs[0]


def test_a_restored_state_draws_the_next_epoch_of_the_uninterrupted_run():
    straight = Batches(30, 7, lambda idx: idx, shuffle=True, seed=0)
    epoch(straight)
    state = straight.state_dict()
    second = epoch(straight)
    resumed = Batches(30, 7, lambda idx: idx, shuffle=True, seed=0)
    resumed.load_state_dict(state)
    assert epoch(resumed) == second


def test_tensor_batches_keep_inputs_with_their_targets():
    inputs = torch.arange(23.0).reshape(23, 1)
    batches = tensor_batches(inputs, torch.arange(23) * 10, 5, lambda x: x * 2, shuffle=True, seed=1)
    seen = []
    for x, y in batches:
        assert torch.equal(x[:, 0], y.float() / 5)  # to_model_input applied, pairs kept together
        seen += y.tolist()
    assert sorted(seen) == list(range(0, 230, 10)) and seen != sorted(seen)


def test_valid_split_is_the_seeded_random_split():
    x, y = torch.arange(40) * 100, torch.arange(40)
    splits = split_off_valid(x, y, 7, seed=5544)
    train_idx, valid_idx = random_split(range(40), [33, 7], generator=torch.Generator().manual_seed(5544))
    assert splits["valid"][1].tolist() == list(valid_idx) and splits["train"][1].tolist() == list(train_idx)
    assert torch.equal(splits["valid"][0], splits["valid"][1] * 100)
    assert split_off_valid(x, y, 7, seed=1)["valid"][1].tolist() != list(valid_idx)


@pytest.mark.parametrize("valid_size,ok", [(0, False), (1, True), (9, True), (10, False), (11, False)])
def test_valid_size_must_leave_both_splits_non_empty(valid_size, ok):
    x = torch.arange(10)
    if ok:
        splits = split_off_valid(x, x, valid_size, seed=0)
        assert (len(splits["train"][0]), len(splits["valid"][0])) == (10 - valid_size, valid_size)
    else:
        with pytest.raises(SystemExit, match=f"--valid-size {valid_size} must be between 1 and 9"):
            split_off_valid(x, x, valid_size, seed=0)


def test_split_batches_shuffle_train_by_seed_and_keep_valid_and_test_in_order():
    splits = {name: (torch.arange(n), torch.arange(n)) for name, n in (("train", 20), ("valid", 9),
                                                                        ("test", 9))}

    def orders(seed, test_batch):
        batches = split_batches(splits, "cpu", lambda x: x, batch=4, test_batch=test_batch, seed=seed)
        return {name: [y.tolist() for _, y in b] for name, b in batches.items()}
    first = orders(seed=0, test_batch=3)
    assert first["valid"] == first["test"] == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    assert sorted(sum(first["train"], [])) == list(range(20)) and sum(first["train"], []) != list(range(20))
    assert orders(seed=0, test_batch=3)["train"] == first["train"]
    assert orders(seed=1, test_batch=3)["train"] != first["train"]
    # on the CPU an evaluation batch holds at most a training batch (4), also for None (whole split)
    assert orders(seed=0, test_batch=None)["valid"] == orders(seed=0, test_batch=1000)["valid"] == \
        [[0, 1, 2, 3], [4, 5, 6, 7], [8]]


@pytest.mark.parametrize("device,test_batch,expected", [("cuda", 1000, 1000), ("cuda", None, 9), ("cuda:1", 3, 3),
                                                        ("cpu", 1000, 4), ("cpu", None, 4), ("cpu", 3, 3)])
def test_evaluation_batch_is_the_test_batch_on_a_gpu_and_at_most_the_training_batch_on_the_cpu(
        device, test_batch, expected):
    assert evaluation_batch(test_batch, 4, 9, device) == expected
