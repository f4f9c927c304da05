"""Shared test helpers: fresh random inputs and relative errors ||a - b|| / ||b||."""
import os
import pathlib
import sys

import pytest
import torch

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # experiment folders (psMNIST/, ...) import as packages
# Real MNIST (the four gzipped idx files): $UNICORNN_MNIST_DIR, else ../shared/data/mnist beside the
# checkout (where this project's machines keep it); tests that need it skip when neither has it.
MNIST_DIR = pathlib.Path(os.environ.get("UNICORNN_MNIST_DIR") or REPO.parent / "shared" / "data" / "mnist")


def outside_the_checkout(tmp_path):
    """(cwd, env) to run ``python -m repro....`` as a user of the README's set-up would, from another
    directory: only this checkout's ``repro`` and ``unicornn`` importable (as the editable install
    maps them), not the repository root."""
    site = tmp_path / "site"
    site.mkdir()
    for package in ("repro", "unicornn"):
        (site / package).symlink_to(REPO / package)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    return elsewhere, dict(os.environ, PYTHONPATH=str(site))


def rel_err(a, b):
    """||a - b|| / ||b||; the denominator is floored at 1e-6 so that a true value of exactly zero
    (e.g. dL/dw at N = 1, where y_0 = 0) is compared absolutely."""
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return ((a - b).norm() / b.norm().clamp_min(1e-6)).item()


def random_problem(n, batch, hidden, seed, device="cpu", x_scale=1.0, last_step_loss=False):
    """Inputs exactly representable in float32 (so float32 and float64 runs see the same numbers):
    x (N, B, H), w ~ U(0, 1), c ~ U(-0.1, 0.1) as the model's init, and an upstream gradient."""
    g = torch.Generator().manual_seed(seed)
    x = x_scale * torch.randn(n, batch, hidden, generator=g)
    w = torch.rand(hidden, generator=g)
    c = torch.rand(hidden, generator=g) * 0.2 - 0.1
    grad_y = torch.zeros(n, batch, hidden)
    if last_step_loss:  # a classifier on the last step, as the models train
        grad_y[-1] = torch.randn(batch, hidden, generator=g)
    else:
        grad_y = torch.randn(n, batch, hidden, generator=g)
    return [t.to(device) for t in (x, w, c, grad_y)]


def outputs_and_grads(fn, x, w, c, grad_y, dtype):
    """Run fn(x, w, c) in dtype, back-propagate grad_y; return [y, dx, dw, dc]."""
    xx, ww, cc = (t.detach().to(dtype).clone().requires_grad_() for t in (x, w, c))
    y = fn(xx, ww, cc)
    y.backward(grad_y.to(dtype))
    return [y.detach(), xx.grad, ww.grad, cc.grad]


def random_state_problem(n, batch, hidden, seed):
    """random_problem plus an initial state (2, B, H) and a loss gradient on the final state (2, B, H)."""
    x, w, c, grad_y = random_problem(n, batch, hidden, seed)
    g = torch.Generator().manual_seed(seed + 1)
    return x, w, c, grad_y, 0.5 * torch.randn(2, batch, hidden, generator=g), torch.randn(2, batch, hidden, generator=g)


def with_padding(x, lengths, value=float("nan")):
    """x (N, B, ...) with every step past each sequence's length set to ``value``."""
    steps = torch.arange(x.shape[0])[:, None]
    pad = (steps >= torch.as_tensor(lengths)[None, :]).reshape(x.shape[:2] + (1,) * (x.dim() - 2))
    return x.masked_fill(pad, value)


def state_outputs_and_grads(fn, x, w, c, grad_y, initial, grad_final, lengths, dtype):
    """fn(x, w, c, initial_state=, lengths=, return_state=True) in dtype, back-propagating grad_y and
    grad_final; returns [y, y_n, z_n, dx, dw, dc, dy_0, dz_0]."""
    xx, ww, cc, y0, z0 = (t.detach().to(dtype).clone().requires_grad_() for t in (x, w, c, *initial))
    y, (y_n, z_n) = fn(xx, ww, cc, initial_state=(y0, z0), lengths=lengths, return_state=True)
    torch.autograd.backward([y, y_n, z_n], [g.to(dtype) for g in (grad_y, *grad_final)])
    return [y.detach(), y_n.detach(), z_n.detach(), xx.grad, ww.grad, cc.grad, y0.grad, z0.grad]


def max_rel_errs(results, truth):
    return [rel_err(a, b) for a, b in zip(results, truth)]


@pytest.fixture
def mnist_dir():
    if not (MNIST_DIR / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"real MNIST not found at {MNIST_DIR} (set UNICORNN_MNIST_DIR to a folder with the "
                    "four idx files)")
    return MNIST_DIR


@pytest.fixture
def tiny_psmnist(tmp_path):
    """psMNIST flags for a seconds-long CPU run on tiny idx files (120 train, 30 test images)."""
    from tiny_data import write_mnist
    folder = write_mnist(tmp_path / "mnist")
    return ["--data-dir", str(folder), "--cache-dir", str(tmp_path / "cache"), "--valid-size", "20",
            "--nhid", "8", "--nlayers", "1", "--batch", "16", "--test-batch", "50", "--device", "cpu",
            "--no-progress"]
