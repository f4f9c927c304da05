"""Seeds and RNG states (repro/seeding.py): seeding makes Python's, NumPy's and torch's global
generators repeat, and a saved state restores each of them, as a resumed run needs."""
import random

import numpy as np
import torch

from repro.seeding import restore_rng_states, rng_states, seed_everything


def draws():
    return random.random(), float(np.random.rand()), torch.rand(1).item()


def test_seed_everything_seeds_python_numpy_and_torch():
    seed_everything(7)
    first = draws()
    seed_everything(7)
    again = draws()
    seed_everything(8)
    other = draws()
    assert again == first
    assert all(a != b for a, b in zip(first, other))  # each generator follows the seed


def test_restored_states_continue_every_generator_where_it_was():
    seed_everything(0)
    draws()
    states = rng_states()
    expected = draws()
    draws()
    restore_rng_states(states)
    assert draws() == expected  # Python, NumPy and torch each repeat
