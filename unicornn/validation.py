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
    return check_hyperparameter_range(dt, "dt"), check_hyperparameter_range(alpha, "alpha")


def check_hyperparameter_range(value, name):
    """dt > 0 or alpha >= 0, finite (a float from ``scalar_hyperparameter``); returns it."""
    if not (0.0 < value < math.inf if name == "dt" else 0.0 <= value < math.inf):  # also false for NaN
        raise ValueError(f"{name} must be a finite number {'> 0' if name == 'dt' else '>= 0'}, got {value!r}")
    return value


def check_initial_state(initial_state, x):
    """(y_0, z_0), each (batch, hidden) on x's device, as one (2, batch, hidden) tensor; None stays None."""
    if initial_state is None:
        return None
    if isinstance(initial_state, torch.Tensor) or not isinstance(initial_state, (tuple, list)) \
            or len(initial_state) != 2:
        raise ValueError("initial_state must be a pair (y_0, z_0) of tensors of shape (batch, hidden), "
                         f"got {type(initial_state).__name__}")
    batch_hidden = tuple(x.shape[1:])
    for name, t in zip(("y_0", "z_0"), initial_state):
        if not isinstance(t, torch.Tensor) or t.dtype not in FLOAT_DTYPES:
            raise ValueError(f"initial_state's {name} must be a floating point tensor, got "
                             f"{getattr(t, 'dtype', type(t).__name__)}")
        if tuple(t.shape) != batch_hidden:
            raise ValueError(f"initial_state's {name} must have shape (batch, hidden) = {batch_hidden} to "
                             f"match x of shape {tuple(x.shape)}, got {tuple(t.shape)}")
        if t.device != x.device:
            raise ValueError(f"initial_state's {name} is on {t.device} but x is on {x.device}")
    return torch.stack([initial_state[0], initial_state[1].to(initial_state[0].dtype)])


def check_lengths(lengths, x):
    """lengths: (batch,) integers (a tensor on any device, or a sequence of ints) -> an int64 tensor;
    the values, in [0, N], are checked where the op runs (``check_length_values``)."""
    if lengths is None:
        return None
    if not isinstance(lengths, torch.Tensor):
        try:
            lengths = torch.as_tensor(lengths)
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(f"lengths must be a (batch,) tensor or sequence of integers, got {lengths!r}") from None
    if lengths.dtype == torch.bool or lengths.is_floating_point() or lengths.is_complex():
        raise ValueError(f"lengths must hold integers, got {lengths.dtype}")
    if tuple(lengths.shape) != (x.shape[1],):
        raise ValueError(f"lengths must have shape (batch,) = ({x.shape[1]},) to match x of shape "
                         f"{tuple(x.shape)}, got {tuple(lengths.shape)}")
    # the CPU path reads them on the CPU; the CUDA kernel takes them from either device
    return lengths.to(device="cpu" if x.device.type == "cpu" else lengths.device, dtype=torch.int64)


def check_length_values(lengths, n_steps):
    """Raise unless every length lies in [0, n_steps]; returns None when all equal n_steps (the op
    then runs its equal-length loops). Reads the values: a device sync for CUDA lengths, skipped
    (unchecked) while a CUDA graph is being captured."""
    if lengths is None:
        return None
    if lengths.is_cuda and torch.cuda.is_current_stream_capturing():
        return lengths
    low, high = int(lengths.min()), int(lengths.max())
    if low < 0 or high > n_steps:
        raise ValueError(f"lengths must lie in [0, seq_len] = [0, {n_steps}], got values from {low} to {high}")
    return None if low == n_steps else lengths
