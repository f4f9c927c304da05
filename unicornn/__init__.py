"""UnICORNN (Rusch & Mishra, ICML 2021): undamped independent oscillators integrated by symplectic
Euler, with a backward pass that reconstructs hidden states instead of storing them."""
from . import cpu_path, torch_loop
from .cpu_path import cpu_implementation
from .kernel_source import KERNEL_SOURCE
from .layer import DropoutOverTime, UnICORNNLayer, UnICORNNRecurrence
from .model import UnICORNN, UnICORNNStack
from .ops import DEFAULT_CKPT_EVERY, recurrence, step
from .reference import reference_recurrence

__all__ = ["KERNEL_SOURCE", "DEFAULT_CKPT_EVERY", "DropoutOverTime", "UnICORNN", "UnICORNNRecurrence",
           "UnICORNNLayer", "UnICORNNStack", "cpu_implementation", "recurrence", "reference_recurrence", "step"]
