"""How runs are scored (repro/metrics.py): RMSE and accuracy over all samples of a split (batches of
unequal size included), evaluated in eval mode without autograd, and the Metric's comparison and
printing."""
import math

import pytest
import torch

from repro.batching import tensor_batches
from repro.metrics import Metric, evaluate_accuracy, evaluate_rmse


class Fixed(torch.nn.Module):
    """Returns its inputs as the prediction; records the mode and autograd state it was called in."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(()))  # so that autograd would track the output
        self.calls = []

    def forward(self, inputs):
        self.calls.append((self.training, torch.is_grad_enabled()))
        return inputs * self.weight


def batches_of(outputs, targets, batch_size):
    return tensor_batches(torch.as_tensor(outputs), torch.as_tensor(targets), batch_size, lambda t: t)


def test_rmse_is_the_root_of_the_mean_squared_error_over_all_samples():
    # errors 1, 1, 1 in the first batch of 3 and 3 in the last batch of 1: sum of squares 12 over
    # 4 samples. RMSE sqrt(3); without the root 3; the mean of per-batch RMSEs (1 + 3) / 2 = 2.
    predictions = torch.tensor([[61.0], [59.0], [71.0], [53.0]])  # (batch, 1) as the regression head
    targets = torch.tensor([60.0, 60.0, 70.0, 50.0])
    model = Fixed()
    model.train()
    assert evaluate_rmse(model, batches_of(predictions, targets, 3)) == pytest.approx(math.sqrt(3), rel=1e-12)
    assert model.calls == [(False, False)] * 2  # eval mode (no dropout), no autograd graph


def test_rmse_is_exact_on_a_perfect_fit_and_independent_of_the_batch_size():
    targets = torch.linspace(-2, 5, 7)
    assert evaluate_rmse(Fixed(), batches_of(targets, targets, 3)) == 0.0
    predictions = targets + torch.tensor([0.5, -1.0, 2.0, 0.0, -0.25, 1.5, -3.0])
    expected = ((predictions - targets).double().square().mean().sqrt()).item()
    for batch_size in (1, 2, 4, 7):
        assert evaluate_rmse(Fixed(), batches_of(predictions, targets, batch_size)) == \
            pytest.approx(expected, rel=1e-12)


def test_accuracy_counts_samples_not_batches():
    # 4 samples in the first batch (1 right), 1 in the last (right): 2 of 5 = 40%, where a mean of
    # per-batch accuracies would give (25% + 100%) / 2 = 62.5%.
    logits = torch.tensor([[2.0, 0.0, 1.0], [0.0, 3.0, 1.0], [1.0, 0.0, 5.0], [4.0, 1.0, 0.0],
                           [0.0, 0.0, 9.0]])
    targets = torch.tensor([0, 2, 1, 1, 2])
    model = Fixed()
    model.train()
    assert evaluate_accuracy(model, batches_of(logits, targets, 4)) == pytest.approx(40.0)
    assert model.calls == [(False, False)] * 2  # eval mode (no dropout), no autograd graph


def test_accuracy_of_one_output_is_the_sign_of_the_logit():
    # IMDB: one logit per review, float targets 0/1; positive iff the logit is > 0, so a logit of
    # exactly 0 (sigmoid 0.5, rounded to 0 by the 2021 code's torch.round) is negative.
    logits = torch.tensor([[3.0], [-0.5], [0.0], [0.25], [-2.0], [1.0]])
    targets = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0])  # right, right, right, wrong, wrong, right
    assert evaluate_accuracy(Fixed(), batches_of(logits, targets, 4)) == pytest.approx(400 / 6)
    assert evaluate_accuracy(Fixed(), batches_of(logits.reshape(-1), targets, 6)) == pytest.approx(400 / 6)


@pytest.mark.parametrize("higher_is_better,new,old,better", [
    (True, 98.5, 98.4, True), (True, 98.3, 98.4, False), (True, 98.4, 98.4, False),
    (False, 1.2, 1.3, True), (False, 1.4, 1.3, False), (False, 1.3, 1.3, False),
    (True, 0.0, None, True), (False, 99.0, None, True),
])
def test_better_follows_the_direction_and_keeps_the_first_of_equal_values(higher_is_better, new, old, better):
    assert Metric("m", higher_is_better, ".2f").better(new, old) is better


def test_show_formats_with_unit_and_marks_a_missing_value():
    accuracy, rmse = Metric("accuracy", True, ".2f", "%"), Metric("RMSE", False, ".3f")
    assert accuracy.show(98.4012) == "98.40%" and rmse.show(1.23456) == "1.235"
    assert accuracy.show(None) == "-" and accuracy.show(0.0) == "0.00%"
