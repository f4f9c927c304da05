"""Forward-mode derivative (JVP) of the recurrence: the tangent recurrence, run beside the primal one.

Differentiating paper eq. (3) along tangents (dx, dw, dc, dy_0, dz_0), with s = dt * sigmoid(c),
f_t = tanh(w y_{t-1} + x_t) + alpha y_{t-1}:

    ds    = dt * sigmoid'(c) * dc
    df_t  = (1 - tanh^2) * (dw y_{t-1} + w dy_{t-1} + dx_t) + alpha dy_{t-1}
    dz_t  = dz_{t-1} - ds f_t - s df_t
    dy_t  = dy_{t-1} + ds z_t + s dz_t

A PyTorch loop over time on any device (two dozen calls per step): forward mode is for Jacobians of
small problems and checks, not for training, where the reconstructing backward is the fast path.
"""
import torch


def _or_zeros(tangent, like):
    return torch.zeros_like(like) if tangent is None else tangent


def tangent_recurrence(x, weight, c, initial, lengths, dt, alpha, dx, dweight, dc, dinitial):
    """-> (dy (N, B, H), d(final state) (2, B, H)); a None tangent is zero."""
    dx, dweight, dc = _or_zeros(dx, x), _or_zeros(dweight, weight), _or_zeros(dc, c)
    state_shape = (2,) + tuple(x.shape[1:])
    y, z = (x.new_zeros(state_shape) if initial is None else initial).unbind(0)
    dy, dz = (x.new_zeros(state_shape) if dinitial is None else dinitial).unbind(0)
    sig = torch.sigmoid(c)
    s, ds = dt * sig, dt * sig * (1.0 - sig) * dc
    running = None if lengths is None else lengths.to(x.device)[:, None]
    outputs = []
    for t in range(x.shape[0]):
        th = torch.tanh(weight * y + x[t])
        f = th + alpha * y
        df = (1.0 - th * th) * (dweight * y + weight * dy + dx[t]) + alpha * dy
        z_next = z - s * f
        dz_next = dz - ds * f - s * df
        y_next = y + s * z_next
        dy_next = dy + ds * z_next + s * dz_next
        if running is None:
            y, z, dy, dz = y_next, z_next, dy_next, dz_next
            outputs.append(dy)
        else:  # past its length a sequence keeps its state and outputs 0 (padding may be NaN)
            live = running > t
            y, z = torch.where(live, y_next, y), torch.where(live, z_next, z)
            dy, dz = torch.where(live, dy_next, dy), torch.where(live, dz_next, dz)
            outputs.append(torch.where(live, dy_next, 0.0))
    return torch.stack(outputs), torch.stack([dy, dz])
