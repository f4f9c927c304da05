"""--seed decides a run's initial weights in every experiment: the same seed gives the same model,
another seed another (nothing in a script may reseed the global generator after seeding)."""
import pytest
import torch

from repro import experiments, training
from test_lr_schedule import tiny_flags


class CapturedModel(Exception):
    """Raised by a stand-in fit with the model main built."""


def capture_model(args, model, *rest, **kwargs):
    raise CapturedModel({k: v.clone() for k, v in model.state_dict().items()})


@pytest.mark.parametrize("task", ["psMNIST", "noisy_cifar", "eigenworms", "healthcare_RR", "imdb"])
def test_the_seed_sets_the_initial_weights(task, tmp_path, monkeypatch):
    experiment, _ = experiments.find_task(task)
    flags = tiny_flags(task, tmp_path, monkeypatch) + ["--device", "cpu", "--no-progress"]
    monkeypatch.setattr(training, "fit", capture_model)

    def initial_weights(seed, run):
        with pytest.raises(CapturedModel) as captured:
            experiment.main(flags + ["--seed", str(seed), "--out-dir", str(tmp_path / run)])
        return captured.value.args[0]
    first, again, other = initial_weights(0, "a"), initial_weights(0, "b"), initial_weights(1, "c")
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert any(not torch.equal(first[k], other[k]) for k in first)
