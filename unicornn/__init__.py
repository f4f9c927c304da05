"""UnICORNN (Rusch & Mishra, ICML 2021): undamped independent oscillators integrated by symplectic
Euler, with a backward pass that reconstructs hidden states instead of storing them."""
from .kernel_source import KERNEL_SOURCE
from .model import DropoutOverTime, UnICORNN, UnICORNNRecurrence, UnICORNNStack
from .ops import DEFAULT_CKPT_EVERY, recurrence
from .reference import reference_recurrence

__all__ = ["KERNEL_SOURCE", "DEFAULT_CKPT_EVERY", "DropoutOverTime", "UnICORNN",
           "UnICORNNRecurrence", "UnICORNNStack", "recurrence", "reference_recurrence"]
