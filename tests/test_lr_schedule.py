"""Every experiment divides its learning rate by 10 after the epoch the paper's 2021 code did, and
at no other epoch: psMNIST after epoch 650 of 2600 (``(epoch + 1) == reduce_point``), noisy
CIFAR-10 after 250 of 500 (``(epoch + 1) % 250 == 0``), healthcare after 250 of 500; EigenWorms and
IMDB never. Each script's main runs on tiny data with the paper's defaults; training.fit is replaced
by a stand-in that records what main passed, and the schedule fit builds from it
(training.lr_scheduler) is stepped through every epoch of the paper's run."""
import os

import pytest
import torch
import torchvision.datasets.cifar

from repro import experiments, training
from tiny_data import write_cifar, write_imdb, write_mnist, write_problem

# task -> (epoch after which the 2021 code divides lr by 10, or None; epochs of the paper's run)
PAPER_DROPS = {"psMNIST": (650, 2600), "noisy_cifar": (250, 500), "healthcare_RR": (250, 500),
               "healthcare_HR": (250, 500), "eigenworms": (None, 250), "imdb": (None, 50)}


class Captured(Exception):
    """Raised by the stand-in fit with what main passed to it."""


def capture(args, model, train_batches, loss_fn, evaluate, task, lr_milestones=(), **kwargs):
    raise Captured(args, task, list(lr_milestones))


def tiny_flags(task, tmp_path, monkeypatch):
    """Flags that point a script at tiny data; none changes the schedule."""
    if task == "psMNIST":
        return ["--data-dir", str(write_mnist(tmp_path / "mnist")), "--cache-dir", str(tmp_path / "cache"),
                "--valid-size", "20"]
    if task == "noisy_cifar":
        monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity",
                            lambda path, md5=None: os.path.isfile(path))
        return ["--data-dir", str(write_cifar(tmp_path / "cifar")), "--no-download", "--valid-size", "10"]
    if task == "eigenworms":
        write_problem(tmp_path / "raw", "EigenWorms", 30, 10, channels=6, length=20, regression=False)
        return ["--data-dir", str(tmp_path)]
    if task.startswith("healthcare"):
        name = task.split("_")[1]
        write_problem(tmp_path / "raw", f"BIDMC32{name}", 30, 10, channels=2, length=20, regression=True)
        return ["--name", name, "--data-dir", str(tmp_path)]
    return ["--data-dir", str(write_imdb(tmp_path)), "--no-download", "--emb-dim", "50", "--valid-size", "4"]


def lr_per_epoch(lr, milestones, epochs):
    """The lr each epoch trains with, as fit logs it, under fit's own scheduler."""
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    scheduler = training.lr_scheduler(optimizer, milestones)
    rates = []
    for _ in range(epochs):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


@pytest.mark.parametrize("task", sorted(PAPER_DROPS))
def test_lr_drops_tenfold_at_the_papers_epoch(task, tmp_path, monkeypatch):
    experiment, _ = experiments.find_task(task)
    monkeypatch.setattr(training, "fit", capture)
    with pytest.raises(Captured) as captured:
        experiment.main(tiny_flags(task, tmp_path, monkeypatch) + ["--device", "cpu", "--no-progress",
                                                                   "--out-dir", str(tmp_path / "run")])
    args, declared, milestones = captured.value.args
    drop, epochs = PAPER_DROPS[task]
    assert declared.name == task and args.epochs == epochs
    rates = lr_per_epoch(args.lr, milestones, args.epochs)
    if drop is None:
        assert rates == [args.lr] * epochs
    else:
        assert rates[:drop] == [args.lr] * drop
        assert rates[drop:] == pytest.approx([args.lr / 10] * (epochs - drop), rel=1e-12)
