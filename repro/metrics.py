"""How the experiments are scored: accuracy (classification) and RMSE (regression), and the
``Metric`` that says which value is better and how to print it."""
import dataclasses
import math

import torch


@dataclasses.dataclass
class Metric:
    """How a task is scored, e.g. Metric("accuracy", True, ".2f", "%")."""
    name: str
    higher_is_better: bool
    fmt: str
    unit: str = ""

    def better(self, new, old):
        return old is None or (new > old if self.higher_is_better else new < old)

    def best(self, values):
        return max(values) if self.higher_is_better else min(values)

    def show(self, value):
        return "-" if value is None else f"{value:{self.fmt}}{self.unit}"


@torch.no_grad()
def evaluate_accuracy(model, batches):
    """Accuracy in percent over all samples: argmax of the logits, or logit > 0 for one output."""
    model.eval()
    correct, total = 0, 0
    for inputs, targets in batches:
        logits = model(inputs)
        if logits.dim() == 1 or logits.shape[-1] == 1:
            predicted = (logits.reshape(-1) > 0).to(targets.dtype)
        else:
            predicted = logits.argmax(-1)
        correct += (predicted == targets.reshape(predicted.shape)).sum().item()
        total += targets.shape[0]
    return 100.0 * correct / total


@torch.no_grad()
def evaluate_rmse(model, batches):
    """sqrt(sum of squared errors / number of samples) over the whole split."""
    model.eval()
    squared, total = 0.0, 0
    for inputs, targets in batches:
        squared += (model(inputs).reshape(-1) - targets.reshape(-1)).double().square().sum().item()
        total += targets.shape[0]
    return math.sqrt(squared / total)
