"""Input checks shared by every implementation of the recurrence: clear errors instead of CUDA crashes.

The checks are written so that ``torch.compile(fullgraph=True)`` can trace them, also when a float
dt or alpha changes between calls (dynamo then passes it as a symbolic float): comparisons only,
no ``math.isfinite``.
"""
import math
import numbers

import torch

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def scalar_hyperparameter(value, name):
    """dt or alpha as a Python float. Accepts Python and NumPy real numbers and 0-dim tensors that do
    not require grad (read once with .item(): a CUDA tensor costs a device sync)."""
    if isinstance(value, torch.Tensor):
        if value.dim() != 0:
            raise ValueError(f"{name} must be a number or a 0-dim tensor, got a tensor of shape "
                             f"{tuple(value.shape)}; pass one value per layer to the model, not here")
        if value.requires_grad:
            raise ValueError(f"{name} is a fixed hyperparameter of the recurrence and is not "
                             f"differentiated: pass a number or {name}.detach()")
        return value.item()
    if isinstance(value, torch.SymFloat):  # a changing float under torch.compile
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    return float(value)


def check_recurrence_inputs(x, weight, c, dt, alpha, allow_any_dtype=False):
    """Raise ValueError naming what was expected unless x is (N, batch, hidden), weight and c are
    (hidden,), all on one device, floating point, and dt > 0, alpha >= 0 are finite numbers.
    Returns (dt, alpha) as floats."""
    for name, t in (("x", x), ("weight", weight), ("c", c)):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dtype not in FLOAT_DTYPES:
            raise ValueError(f"{name} must be a floating point tensor "
                             f"(float32, float64, float16 or bfloat16), got {t.dtype}")
    if x.dim() != 3:
        raise ValueError(f"x must have shape (seq_len, batch, hidden), got {tuple(x.shape)}")
    hidden = x.shape[2]
    for name, t in (("weight", weight), ("c", c)):
        if t.shape != (hidden,):
            raise ValueError(f"{name} must have shape (hidden,) = ({hidden},) to match x of shape "
                             f"{tuple(x.shape)}, got {tuple(t.shape)}")
        if t.device != x.device:
            raise ValueError(f"{name} is on {t.device} but x is on {x.device}; "
                             "all inputs must be on one device")
    if not allow_any_dtype and weight.dtype != c.dtype:
        raise ValueError(f"weight and c must have the same dtype, got {weight.dtype} and {c.dtype}")
    dt, alpha = scalar_hyperparameter(dt, "dt"), scalar_hyperparameter(alpha, "alpha")
    if not (0.0 < dt < math.inf):  # also false for NaN
        raise ValueError(f"dt must be a finite number > 0, got {dt!r}")
    if not (0.0 <= alpha < math.inf):
        raise ValueError(f"alpha must be a finite number >= 0, got {alpha!r}")
    return dt, alpha
