"""The fixed random draws of the data code: psMNIST's pixel permutation and noisy CIFAR-10's noise
padding. Their values are pinned (computed with the code of 2026-11-29, which every run so far
used), so a change to how they are drawn cannot silently change what a run trains on; and drawing
them leaves the global random-number generator alone, so the --seed a script sets afterwards (or
before) decides the weights and dropout by itself."""
import hashlib

import pytest
import torch

from noisy_cifar import data as cifar_data
from psMNIST import data as mnist_data


def sha256(tensor, dtype):
    return hashlib.sha256(tensor.numpy().astype(dtype).tobytes()).hexdigest()


def test_the_psmnist_permutation_is_the_one_every_run_used():
    permutation = mnist_data.paper_permutation()
    assert permutation.dtype == torch.int64 and permutation.shape == (784,)
    assert permutation[:16].tolist() == [327, 72, 48, 129, 109, 101, 69, 569, 79, 263, 618, 589, 146, 559,
                                         241, 324]
    assert permutation[-4:].tolist() == [592, 588, 393, 62]
    assert sha256(permutation, "<i8") == "88c77bc3e243c77bfa408d541c47529b0f18e4330833e084f860a8978f5465d7"


def test_the_cifar_noise_is_the_one_every_run_used():
    noise = cifar_data.paper_noise()
    assert noise.dtype == torch.float32 and noise.shape == (968, 96)
    assert noise[0, :4].tolist() == [-1.479807734489441, 0.48730599880218506, -3.012793779373169,
                                     0.4438551962375641]
    assert noise[-1, -3:].tolist() == [-0.6221497654914856, -1.393720030784607, -0.29405319690704346]
    assert sha256(noise, "<f4") == "38d94bd35a05e03b223427f8068d8d69e31bc4d5f4d4db38923e1cc3b36f85ee"


@pytest.mark.parametrize("draw", [mnist_data.paper_permutation, cifar_data.paper_noise],
                         ids=["permutation", "noise"])
def test_drawing_leaves_the_global_generator_alone(draw):
    torch.manual_seed(42)
    state = torch.get_rng_state()
    draw()
    assert torch.equal(torch.get_rng_state(), state)
