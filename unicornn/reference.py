"""The ground truth: the UnICORNN recurrence as a plain PyTorch loop, differentiated by autograd.

Paper eq. (3), symplectic Euler for independent undamped oscillators, per hidden unit i:

    s   = dt * sigmoid(c_i)
    z_t = z_{t-1} - s * (tanh(w_i * y_{t-1} + x_t) + alpha * y_{t-1})
    y_t = y_{t-1} + s * z_t,          y_0 = z_0 = 0.

It stores every intermediate for autograd (memory O(N)), so it is slow and memory-hungry; every fast
path (CPU path, CUDA kernel) is tested against it. Works in any dtype on any device.
"""
import torch

from .validation import check_recurrence_inputs


def reference_recurrence(x, weight, c, dt, alpha):
    """x: (N, batch, hidden); weight, c: (hidden,); dt > 0, alpha >= 0 floats -> y: (N, batch, hidden)."""
    dt, alpha = check_recurrence_inputs(x, weight, c, dt, alpha, allow_any_dtype=True)
    s = dt * torch.sigmoid(c)
    y = x.new_zeros(x.shape[1:])
    z = x.new_zeros(x.shape[1:])
    outputs = []
    # unbind, not x[t]: each x[t]'s backward would materialise a zero tensor the size of x (O(N^2)).
    for x_t in x.unbind(0):
        z = z - s * (torch.tanh(weight * y + x_t) + alpha * y)
        y = y + s * z
        outputs.append(y)
    return torch.stack(outputs) if outputs else (x + 0.0 * (weight + c)).to(x.dtype)  # N = 0: empty
