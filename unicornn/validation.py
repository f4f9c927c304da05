"""Input checks shared by every implementation of the recurrence: clear errors instead of CUDA crashes."""
import math

import torch

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def check_recurrence_inputs(x, weight, c, dt, alpha, allow_any_dtype=False):
    """Raise ValueError naming what was expected unless x is (N, batch, hidden), weight and c are
    (hidden,), all on one device, floating point, and dt > 0, alpha >= 0 are finite numbers."""
    for name, t in (("x", x), ("weight", weight), ("c", c)):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dtype not in FLOAT_DTYPES:
            raise ValueError(f"{name} must be a floating point tensor "
                             f"(float32, float64, float16 or bfloat16), got {t.dtype}")
    if x.dim() != 3:
        raise ValueError(f"x must have shape (seq_len, batch, hidden), got {tuple(x.shape)}")
    if min(x.shape) == 0:
        raise ValueError(f"x must have seq_len, batch and hidden >= 1, got shape {tuple(x.shape)}")
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
    if not isinstance(dt, (int, float)) or not math.isfinite(dt) or dt <= 0:
        raise ValueError(f"dt must be a finite number > 0, got {dt!r}")
    if not isinstance(alpha, (int, float)) or not math.isfinite(alpha) or alpha < 0:
        raise ValueError(f"alpha must be a finite number >= 0, got {alpha!r}")
