"""The recurrence on the CPU without autograd: the same algorithm as the CUDA kernel
(``kernel_source.py``). ``forward`` and ``backward`` run the compiled loops of ``cpu_compiled``
(Numba); without Numba they fall back, with a one-line warning, to the PyTorch loop here
(``forward_vectorised``, ``backward_vectorised``: vectorised over the (batch, hidden) columns,
a dozen PyTorch calls per time step), which stays as the baseline the benchmark compares against.

The forward pass keeps only the outputs y and the states (y, z) at the end of every chunk of
``ckpt_every`` steps. The backward pass reconstructs the hidden states backwards in time by
inverting the symplectic Euler step (paper Sec. 3),

    y_{t-1} = y_t - s * z_t,    z_{t-1} = z_t + s * (tanh(w * y_{t-1} + x_t) + alpha * y_{t-1}),

restarting from the saved state at each chunk end, so its memory is O(batch * hidden) beyond the
gradients. All updates are in place on (batch, hidden) buffers to keep the Python loop cheap.
"""
import warnings

import torch


def num_chunks(n_steps, ckpt_every):
    return -(-n_steps // ckpt_every)


def _is_chunk_end(t, n_steps, ckpt_every):
    return (t + 1) % ckpt_every == 0 or t == n_steps - 1


def _compensated_add(total, step, lost, out=None):
    """Kahan summation: returns total + step and stores in ``lost`` the part the sum rounded away;
    ``step`` must already have the previous ``lost`` subtracted (step = increment - lost)."""
    new_total = torch.add(total, step, out=out)
    torch.sub(new_total, total, out=lost).sub_(step)
    return new_total


@torch.no_grad()
def forward_vectorised(x, weight, c, dt, alpha, ckpt_every):
    """x: (N, B, H) -> (y: (N, B, H), states: (n_chunks, 2, B, H))."""
    n_steps = x.shape[0]
    s = dt * torch.sigmoid(c)
    y = torch.empty_like(x)
    states = x.new_empty((num_chunks(n_steps, ckpt_every), 2) + x.shape[1:])
    hy, hz = x.new_zeros(x.shape[1:]), x.new_zeros(x.shape[1:])
    # Kahan compensation terms: the state moves by O(s) per step, so plain float32 sums lose the
    # low bits of every increment; over 10^4 steps that drift dominates the gradients' error.
    hy_lost, hz_lost = x.new_zeros(x.shape[1:]), x.new_zeros(x.shape[1:])
    force, step = torch.empty_like(hy), torch.empty_like(hy)
    for t in range(n_steps):
        # z_t = z_{t-1} - s * (tanh(w * y_{t-1} + x_t) + alpha * y_{t-1})
        torch.addcmul(x[t], weight, hy, out=force).tanh_()
        if alpha:
            force.add_(hy, alpha=alpha)
        torch.addcmul(hz_lost, force, s, out=step).neg_()          # -s*force - lost
        hz = _compensated_add(hz, step, hz_lost)
        # y_t = y_{t-1} + s * z_t
        torch.addcmul(hy_lost, hz, s, value=-1.0, out=step).neg_()  # s*z - lost
        hy = _compensated_add(hy, step, hy_lost, out=y[t])
        if _is_chunk_end(t, n_steps, ckpt_every):
            states[t // ckpt_every, 0].copy_(hy)
            states[t // ckpt_every, 1].copy_(hz)
    return y, states


@torch.no_grad()
def backward_vectorised(x, weight, c, states, grad_y, dt, alpha, ckpt_every):
    """Gradients of the loss w.r.t. x (N, B, H), weight (H,) and c (H,), given dL/dy (N, B, H)."""
    n_steps = x.shape[0]
    sig = torch.sigmoid(c)
    s = dt * sig
    grad_x = torch.empty_like(x)
    cols = x.shape[1:]
    hy, hz = x.new_zeros(cols), x.new_zeros(cols)          # reconstructed (y_t, z_t)
    ay, az = x.new_zeros(cols), x.new_zeros(cols)          # adjoints dL/dy_t, dL/dz_t
    gw, gs = x.new_zeros(cols), x.new_zeros(cols)          # per-column dL/dw, dL/ds
    th, f, s_az = x.new_empty(cols), x.new_empty(cols), x.new_empty(cols)
    for t in range(n_steps - 1, -1, -1):
        if _is_chunk_end(t, n_steps, ckpt_every):
            hy.copy_(states[t // ckpt_every, 0])
            hz.copy_(states[t // ckpt_every, 1])
        ay.add_(grad_y[t])
        # through y_t = y_{t-1} + s * z_t
        az.addcmul_(ay, s)
        gs.addcmul_(ay, hz)
        hy.addcmul_(hz, s, value=-1.0)                      # y_{t-1}
        # through z_t = z_{t-1} - s * f,  f = tanh(w * y_{t-1} + x_t) + alpha * y_{t-1}
        torch.addcmul(x[t], weight, hy, out=th).tanh_()
        torch.add(th, hy, alpha=alpha, out=f)
        hz.addcmul_(f, s)                                   # z_{t-1}
        gs.addcmul_(az, f, value=-1.0)
        torch.mul(az, s, out=s_az)
        gx = grad_x[t]
        torch.addcmul(s_az, s_az, th.square_(), value=-1.0, out=gx).neg_()  # -s*az*(1 - tanh^2)
        gw.addcmul_(gx, hy)
        ay.addcmul_(gx, weight)
        if alpha:
            ay.add_(s_az, alpha=-alpha)
    grad_c = gs.sum(0) * dt * sig * (1.0 - sig)
    return grad_x, gw.sum(0), grad_c


_compiled = []  # [module or None], decided on first use
# "compiled" or "vectorised" forces an implementation (benchmarks, debugging); None: compiled when
# Numba can build it here, else vectorised.
IMPLEMENTATION = None


def compiled_path():
    """``cpu_compiled`` if Numba imports and compiles it here, else None (warned once)."""
    if not _compiled:
        try:
            from . import cpu_compiled
            x = torch.zeros(2, 1, 1)
            y, states = cpu_compiled.forward(x, x[0, 0], x[0, 0], 0.1, 1.0, 1)  # compiles or loads
            cpu_compiled.backward(x, x[0, 0], x[0, 0], states, y, 0.1, 1.0, 1)
            _compiled.append(cpu_compiled)
        except Exception as err:  # Numba missing, or it cannot compile for this machine
            warnings.warn(f"unicornn: the compiled CPU path is unavailable ({type(err).__name__}: {err}); "
                          "using the slower PyTorch loop (pip install numba)", RuntimeWarning, stacklevel=3)
            _compiled.append(None)
    return _compiled[0]


def _compiled_or_none():
    if IMPLEMENTATION not in (None, "compiled", "vectorised"):
        raise ValueError(f"cpu_path.IMPLEMENTATION must be None, 'compiled' or 'vectorised', got {IMPLEMENTATION!r}")
    if IMPLEMENTATION == "vectorised":
        return None
    impl = compiled_path()
    if impl is None and IMPLEMENTATION == "compiled":
        raise RuntimeError("cpu_path.IMPLEMENTATION = 'compiled' but Numba cannot build the compiled path here")
    return impl


def forward(x, weight, c, dt, alpha, ckpt_every):
    """x: (N, B, H) -> (y: (N, B, H), states: (n_chunks, 2, B, H))."""
    impl = _compiled_or_none()
    return (impl.forward if impl else forward_vectorised)(x, weight, c, dt, alpha, ckpt_every)


def backward(x, weight, c, states, grad_y, dt, alpha, ckpt_every):
    """Gradients w.r.t. x (N, B, H), weight (H,), c (H,) by reconstructing states backwards."""
    impl = _compiled_or_none()
    return (impl.backward if impl else backward_vectorised)(x, weight, c, states, grad_y, dt, alpha, ckpt_every)
