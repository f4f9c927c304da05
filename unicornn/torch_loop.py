"""The PyTorch loop: the recurrence without autograd as a Python loop over time steps, vectorised
over the (batch, hidden) columns with a dozen in-place PyTorch calls per step. The same algorithm as
the CUDA kernel (``kernel_source.py``) and the compiled loops (``cpu_compiled.py``); the CPU path
falls back to it when Numba cannot compile here, and the benchmarks keep it as a baseline.

The forward pass keeps only the outputs y and the states (y, z) at the end of every chunk of
``ckpt_every`` steps (``chunks.py``). The backward pass reconstructs the hidden states backwards in
time by inverting the symplectic Euler step (paper Sec. 3),

    y_{t-1} = y_t - s * z_t,    z_{t-1} = z_t + s * (tanh(w * y_{t-1} + x_t) + alpha * y_{t-1}),

restarting from a saved state at each chunk end, so its memory is O(batch * hidden) beyond the
gradients.

Variable lengths: the batch is sorted by length (longest first) on entry and put back on exit, so
the sequences still running at step t are the first ``live[t]`` rows and every update works in place
on that prefix; the other rows keep their final state and get y = 0 and dL/dx = 0.
"""
import torch

from .chunks import num_chunks


def _compensated_add_(total, step, lost, scratch):
    """Kahan summation in place: total += step, storing in ``lost`` the part the sum rounded away;
    ``step`` must already have the previous ``lost`` subtracted (step = increment - lost)."""
    torch.add(total, step, out=scratch)
    torch.sub(scratch, total, out=lost).sub_(step)
    total.copy_(scratch)


def _by_length(lengths, batch, n_steps):
    """(order, live): the batch order that sorts sequences longest first (None when every sequence
    runs n_steps), and live[t] = how many sequences are still running at step t."""
    if lengths is None:
        return None, [batch] * n_steps
    lengths, order = torch.sort(lengths.cpu(), descending=True, stable=True)
    live = torch.searchsorted(-lengths, -torch.arange(n_steps), side="left").tolist()  # #{L > t}
    return order, live


def _rows(t, order, dim=-2):
    return t if order is None or t is None else t.index_select(dim, order.to(t.device))


def _unsort(t, order, dim=-2):
    if order is None:
        return t
    return t.index_select(dim, torch.argsort(order).to(t.device))


@torch.no_grad()
def forward(x, weight, c, initial, lengths, dt, alpha, ckpt_every):
    """x: (N, B, H), initial (2, B, H) or None, lengths (B,) or None ->
    (y: (N, B, H), states: (n_chunks, 2, B, H))."""
    n_steps, batch = x.shape[:2]
    order, live = _by_length(lengths, batch, n_steps)
    x = _rows(x, order)
    s = dt * torch.sigmoid(c)
    y = torch.empty_like(x)
    states = x.new_empty((num_chunks(n_steps, ckpt_every), 2) + x.shape[1:])
    if initial is None:
        hy, hz = x.new_zeros(x.shape[1:]), x.new_zeros(x.shape[1:])
    else:
        hy, hz = _rows(initial, order).clone().unbind(0)
    # Kahan compensation terms: the state moves by O(s) per step, so plain float32 sums lose the
    # low bits of every increment; over 10^4 steps that drift dominates the gradients' error.
    hy_lost, hz_lost = x.new_zeros(x.shape[1:]), x.new_zeros(x.shape[1:])
    force, step, scratch = torch.empty_like(hy), torch.empty_like(hy), torch.empty_like(hy)
    for t in range(n_steps):
        b = live[t]
        y[t, b:] = 0.0
        if b:
            # z_t = z_{t-1} - s * (tanh(w * y_{t-1} + x_t) + alpha * y_{t-1})
            torch.addcmul(x[t, :b], weight, hy[:b], out=force[:b]).tanh_()
            if alpha:
                force[:b].add_(hy[:b], alpha=alpha)
            torch.addcmul(hz_lost[:b], force[:b], s, out=step[:b]).neg_()          # -s*force - lost
            _compensated_add_(hz[:b], step[:b], hz_lost[:b], scratch[:b])
            # y_t = y_{t-1} + s * z_t
            torch.addcmul(hy_lost[:b], hz[:b], s, value=-1.0, out=step[:b]).neg_()  # s*z - lost
            _compensated_add_(hy[:b], step[:b], hy_lost[:b], scratch[:b])
            y[t, :b] = hy[:b]
        if (t + 1) % ckpt_every == 0 or t == n_steps - 1:
            states[t // ckpt_every, 0].copy_(hy)
            states[t // ckpt_every, 1].copy_(hz)
    return _unsort(y, order), _unsort(states, order)


@torch.no_grad()
def backward(x, weight, c, lengths, states, grad_y, grad_final, dt, alpha, ckpt_every):
    """Gradients of the loss w.r.t. x (N, B, H), weight (H,), c (H,) and the initial state
    (2, B, H), given dL/dy (N, B, H) and dL/d(final state) (2, B, H) or None."""
    n_steps, batch = x.shape[:2]
    order, live = _by_length(lengths, batch, n_steps)
    x, grad_y, states = _rows(x, order), _rows(grad_y, order), _rows(states, order)
    sig = torch.sigmoid(c)
    s = dt * sig
    grad_x = torch.empty_like(x)
    cols = x.shape[1:]
    hy, hz = x.new_zeros(cols), x.new_zeros(cols)          # reconstructed (y_t, z_t)
    if grad_final is None:                                 # adjoints dL/dy_t, dL/dz_t
        ay, az = x.new_zeros(cols), x.new_zeros(cols)
    else:
        ay, az = _rows(grad_final, order).clone().unbind(0)
    gw, gs = x.new_zeros(cols), x.new_zeros(cols)          # per-column dL/dw, dL/ds
    th, f, s_az = x.new_empty(cols), x.new_empty(cols), x.new_empty(cols)
    for t in range(n_steps - 1, -1, -1):
        b = live[t]
        grad_x[t, b:] = 0.0
        if not b:
            continue
        # restart from the saved state: every running sequence at a chunk end, and those whose last
        # step this is (rows b_next..b: their final state was saved at this step's chunk end)
        b_next = live[t + 1] if t + 1 < n_steps and (t + 1) % ckpt_every else 0
        hy[b_next:b] = states[t // ckpt_every, 0, b_next:b]
        hz[b_next:b] = states[t // ckpt_every, 1, b_next:b]
        hy_, hz_, ay_, az_, gw_, gs_ = hy[:b], hz[:b], ay[:b], az[:b], gw[:b], gs[:b]
        th_, f_, s_az_ = th[:b], f[:b], s_az[:b]
        ay_.add_(grad_y[t, :b])
        # through y_t = y_{t-1} + s * z_t
        az_.addcmul_(ay_, s)
        gs_.addcmul_(ay_, hz_)
        hy_.addcmul_(hz_, s, value=-1.0)                    # y_{t-1}
        # through z_t = z_{t-1} - s * f,  f = tanh(w * y_{t-1} + x_t) + alpha * y_{t-1}
        torch.addcmul(x[t, :b], weight, hy_, out=th_).tanh_()
        torch.add(th_, hy_, alpha=alpha, out=f_)
        hz_.addcmul_(f_, s)                                 # z_{t-1}
        gs_.addcmul_(az_, f_, value=-1.0)
        torch.mul(az_, s, out=s_az_)
        gx = grad_x[t, :b]
        torch.addcmul(s_az_, s_az_, th_.square_(), value=-1.0, out=gx).neg_()  # -s*az*(1 - tanh^2)
        gw_.addcmul_(gx, hy_)
        ay_.addcmul_(gx, weight)
        if alpha:
            ay_.add_(s_az_, alpha=-alpha)
    grad_c = gs.sum(0) * dt * sig * (1.0 - sig)
    return _unsort(grad_x, order), gw.sum(0), grad_c, _unsort(torch.stack([ay, az]), order)
