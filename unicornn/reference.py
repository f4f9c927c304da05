"""The ground truth: the UnICORNN recurrence as a plain PyTorch loop, differentiated by autograd.

Paper eq. (3), symplectic Euler for independent undamped oscillators, per hidden unit i:

    s   = dt * sigmoid(c_i)
    z_t = z_{t-1} - s * (tanh(w_i * y_{t-1} + x_t) + alpha * y_{t-1})
    y_t = y_{t-1} + s * z_t,          (y_0, z_0) = initial state (default 0).

With lengths, sequence b takes lengths[b] steps: past that its state stays put and its output is 0.
It stores every intermediate for autograd (memory O(N)), so it is slow and memory-hungry; every fast
path (CPU path, CUDA kernel) is tested against it. Works in any dtype on any device, and supports
everything autograd does (double backward, forward mode, torch.func).
"""
import torch

from .validation import check_initial_state, check_length_values, check_lengths, check_recurrence_inputs


def reference_recurrence(x, weight, c, dt, alpha, *, initial_state=None, lengths=None, return_state=False):
    """The signature of ``unicornn.recurrence``: x (N, batch, hidden); weight, c (hidden,); dt > 0,
    alpha >= 0 -> y (N, batch, hidden), and with return_state=True (y, (y_n, z_n))."""
    dt, alpha = check_recurrence_inputs(x, weight, c, dt, alpha, allow_any_dtype=True)
    initial = check_initial_state(initial_state, x)
    lengths = check_lengths(lengths, x)
    lengths = check_length_values(lengths, x.shape[0]) if x.shape[1] else None
    s = dt * torch.sigmoid(c)
    if initial is None:
        y, z = x.new_zeros(x.shape[1:]), x.new_zeros(x.shape[1:])
    else:
        y, z = initial.to(x.dtype).unbind(0)
    running = None
    if lengths is not None:
        running = lengths.to(x.device)[:, None]
        # padding never enters the arithmetic, so a NaN there cannot reach a gradient through 0 * NaN
        x = torch.where((torch.arange(x.shape[0], device=x.device)[:, None] < running.T)[..., None], x, 0.0)
    outputs = []
    # unbind, not x[t]: each x[t]'s backward would materialise a zero tensor the size of x (O(N^2)).
    for t, x_t in enumerate(x.unbind(0)):
        z_next = z - s * (torch.tanh(weight * y + x_t) + alpha * y)
        y_next = y + s * z_next
        if running is None:
            y, z = y_next, z_next
            outputs.append(y)
        else:
            live = running > t
            y, z = torch.where(live, y_next, y), torch.where(live, z_next, z)
            outputs.append(torch.where(live, y_next, 0.0))
    out = torch.stack(outputs) if outputs else (x + 0.0 * (weight + c)).to(x.dtype)  # N = 0: empty
    return (out, (y, z)) if return_state else out
