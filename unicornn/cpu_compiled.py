"""The recurrence on the CPU as compiled loops (Numba): the CUDA kernel's algorithm (``kernel_source``)
with the arithmetic of the PyTorch loop (``torch_loop``), one pass per time step over a tile of
columns instead of a dozen PyTorch calls per step.

Columns are the (batch, unit) pairs of x viewed as (N, batch * hidden). Threads take tiles of
neighbouring columns and walk them through time, so every step reads and writes one contiguous
row segment, and the loop over a tile's columns compiles to SIMD instructions (AVX2/AVX-512). That
needs a tanh the compiler can vectorise: ``tanh_float32`` below (float64 keeps ``math.tanh``).

The forward pass keeps Kahan-compensated state sums and saves (y, z) at every chunk end; the
backward pass inverts the symplectic Euler step (paper Sec. 3) from those states, as ``torch_loop``
documents. Variable lengths: while every column of a tile still runs, the loops are those of
equal lengths; from the first column's end on, each column checks its own length.

Compiled once per machine for float32 and float64, the machine code kept on disk (Numba's cache,
beside this file or in the user's cache folder); where neither is writable (a read-only install
with an unwritable HOME) it is compiled in every process instead, with a warning that says so.
Of ``fastmath`` only ``contract`` is on: a * b + c becomes one fused multiply-add, as NVRTC compiles
the CUDA kernel by default (about 20% faster here, benchmarks/RESULTS.md); reassociation stays off so
the compensated sums are not simplified away. ``error_model="numpy"`` drops Python's division checks,
which would stop vectorisation.
"""
import contextlib
import math
import warnings

import numba
import numpy as np
import torch
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic, overload

from .chunks import num_chunks

MAX_TILE = 1024  # columns per task at most: 4 KB of a float32 row, state of 16 KB


def _disk_cache():
    """True when Numba can keep the compiled code on disk for this file; else warn (once, naming
    the cause) and compile in every process."""
    try:
        numba.njit(cache=True)(_disk_cache)  # Numba looks for a writable cache folder here
        return True
    except RuntimeError as err:  # "cannot cache function ...: no locator available for file ..."
        warnings.warn(f"unicornn: Numba cannot write its on-disk cache ({err}); the compiled CPU path "
                      "is compiled again in every process (about 20 s on 2 cores). Set NUMBA_CACHE_DIR to a "
                      "writable folder to keep it.", RuntimeWarning, stacklevel=2)
        return False


CACHE = _disk_cache()
FASTMATH = {"contract"}  # fused multiply-adds; no reassociation (the Kahan sums need it off)


@intrinsic
def _float32_from_bits(typingctx, bits):
    """Reinterpret an int32 as the float32 with those bits (LLVM bitcast; vectorisable)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return types.float32(types.int32), codegen


_f = np.float32


def tanh_float32(v):
    """tanh of a float32, branch free so that loops over it vectorise, as accurate as libm's tanhf
    (measured on 11 million float32 in [-12, 12]: at most 1.27 ulp, 0.03 on average; tanhf: 1.37). Cephes' tanhf: for |x| < 0.625 an odd polynomial, else
    1 - 2 / (exp(2|x|) + 1) with Cephes' expf (2^n e^r, |r| <= ln2/2, 2^n built from its bits)."""
    a = abs(v)
    z = a * a
    small = ((((_f(-5.70498872745e-3) * z + _f(2.06390887954e-2)) * z - _f(5.37397155531e-2)) * z
              + _f(1.33314422036e-1)) * z - _f(3.33332819422e-1)) * z * a + a
    y = min(a + a, _f(40.0))  # tanh(20) rounds to 1
    n = np.floor(y * _f(1.44269504088896341) + _f(0.5))
    r = (y - n * _f(0.693359375)) + n * _f(2.12194440e-4)
    p = (((((_f(1.9875691500e-4) * r + _f(1.3981999507e-3)) * r + _f(8.3334519073e-3)) * r
           + _f(4.1665795894e-2)) * r + _f(1.6666665459e-1)) * r + _f(5.0000001201e-1)) * r * r + r + _f(1.0)
    large = _f(1.0) - _f(2.0) / (p * _float32_from_bits((np.int32(n) + np.int32(127)) << np.int32(23)) + _f(1.0))
    return math.copysign(small if a < _f(0.625) else large, v)


def _tanh(v):
    return math.tanh(v)


@overload(_tanh, inline="always", jit_options={"fastmath": FASTMATH})
def _tanh_by_dtype(v):
    """float32: the vectorisable tanh above; float64: libm's tanh."""
    if v == types.float32:
        return tanh_float32
    return lambda v: math.tanh(v)


def _jit(function):
    """Compiled in parallel; cached on disk where Numba can write (``CACHE``)."""
    return numba.njit(parallel=True, cache=CACHE, error_model="numpy", fastmath=FASTMATH)(function)


@numba.njit(error_model="numpy", fastmath=FASTMATH, cache=CACHE)
def _step_forward(x_t, w, s, alpha, hy, hz, hy_lost, hz_lost):
    """One symplectic Euler step of one column (paper eq. 3) with Kahan-compensated state sums:
    returns the new (y, z) and compensation terms."""
    # z_t = z_{t-1} - s * (tanh(w * y_{t-1} + x_t) + alpha * y_{t-1})
    force = _tanh(x_t + w * hy) + alpha * hy
    step = -(hz_lost + force * s)
    total = hz + step
    hz_lost = (total - hz) - step
    hz = total
    # y_t = y_{t-1} + s * z_t
    step = -(hy_lost - hz * s)
    total = hy + step
    hy_lost = (total - hy) - step
    return total, hz, hy_lost, hz_lost


@numba.njit(error_model="numpy", fastmath=FASTMATH, cache=CACHE)
def _step_backward(x_t, gy_t, w, s, alpha, hy, hz, ay, az, gw, gs):
    """One step back through the symplectic Euler step of one column: reconstructs (y_{t-1},
    z_{t-1}) from (y_t, z_t) and moves the adjoints; returns them with dL/dx_t."""
    ay += gy_t
    # through y_t = y_{t-1} + s * z_t
    az += ay * s
    gs += ay * hz
    hy -= hz * s                                  # y_{t-1}
    # through z_t = z_{t-1} - s * f,  f = tanh(w * y_{t-1} + x_t) + alpha * y_{t-1}
    th = _tanh(x_t + w * hy)
    f = th + alpha * hy
    hz += f * s                                   # z_{t-1}
    gs -= az * f
    s_az = az * s
    gx = -(s_az - s_az * (th * th))               # -s * az * (1 - tanh^2)
    gw += gx * hy
    ay += gx * w - alpha * s_az
    return hy, hz, ay, az, gw, gs, gx


@numba.njit(error_model="numpy", cache=CACHE, inline="always")
def _save_state(states, t, n_steps, ckpt_every, lo, hy, hz):
    """Keep (y_t, z_t) of columns lo.. at every chunk end and at the last step. Inlined: as a call
    per step it cost ~5% of the forward at (17984, 8, 32) (benchmarks/RESULTS.md)."""
    if (t + 1) % ckpt_every == 0 or t == n_steps - 1:
        states[t // ckpt_every, 0, lo:lo + hy.shape[0]] = hy
        states[t // ckpt_every, 1, lo:lo + hy.shape[0]] = hz


@_jit
def _forward(x, w, s, alpha, ckpt_every, tile, initial, lengths, y, states):
    n_steps, n_cols = x.shape
    for task in numba.prange((n_cols + tile - 1) // tile):
        lo, hi = task * tile, min(task * tile + tile, n_cols)
        w_, s_, len_ = w[lo:hi], s[lo:hi], lengths[lo:hi]
        hy, hz = initial[0, lo:hi].copy(), initial[1, lo:hi].copy()
        hy_lost, hz_lost = np.zeros(hi - lo, x.dtype), np.zeros(hi - lo, x.dtype)  # Kahan terms
        every_column_runs = min(len_.min(), n_steps)  # up to here no column of the tile has ended
        for t in range(every_column_runs):  # two loops, so that the common one tests no lengths
            x_t, y_t = x[t, lo:hi], y[t, lo:hi]
            for j in range(hi - lo):
                hy[j], hz[j], hy_lost[j], hz_lost[j] = _step_forward(
                    x_t[j], w_[j], s_[j], alpha, hy[j], hz[j], hy_lost[j], hz_lost[j])
                y_t[j] = hy[j]
            _save_state(states, t, n_steps, ckpt_every, lo, hy, hz)
        for t in range(every_column_runs, n_steps):  # past its length a column keeps its state, outputs 0
            x_t, y_t = x[t, lo:hi], y[t, lo:hi]
            for j in range(hi - lo):
                if t < len_[j]:
                    hy[j], hz[j], hy_lost[j], hz_lost[j] = _step_forward(
                        x_t[j], w_[j], s_[j], alpha, hy[j], hz[j], hy_lost[j], hz_lost[j])
                    y_t[j] = hy[j]
                else:
                    y_t[j] = 0.0
            _save_state(states, t, n_steps, ckpt_every, lo, hy, hz)


@_jit
def _backward(x, w, s, alpha, ckpt_every, tile, lengths, states, grad_y, grad_final, grad_x, grad_w_cols,
              grad_s_cols, grad_initial):
    n_steps, n_cols = x.shape
    for task in numba.prange((n_cols + tile - 1) // tile):
        lo, hi = task * tile, min(task * tile + tile, n_cols)
        w_, s_, len_ = w[lo:hi], s[lo:hi], lengths[lo:hi]
        hy, hz = np.zeros(hi - lo, x.dtype), np.zeros(hi - lo, x.dtype)   # reconstructed (y_t, z_t)
        ay, az = grad_final[0, lo:hi].copy(), grad_final[1, lo:hi].copy()  # adjoints dL/dy_t, dL/dz_t
        gw, gs = np.zeros(hi - lo, x.dtype), np.zeros(hi - lo, x.dtype)   # per-column dL/dw, dL/ds
        # below this step every column of the tile runs and restarts only at chunk ends
        every_column_runs = min(len_.min(), n_steps) - 1
        # first the steps where a column may restart at its own last step or be past its length
        for t in range(n_steps - 1, max(every_column_runs, 0) - 1, -1):
            x_t, gy_t, gx_t = x[t, lo:hi], grad_y[t, lo:hi], grad_x[t, lo:hi]
            chunk = t // ckpt_every
            for j in range(hi - lo):
                if t >= len_[j]:  # past its length nothing flows back
                    gx_t[j] = 0.0
                    continue
                if (t + 1) % ckpt_every == 0 or t == len_[j] - 1:
                    hy[j] = states[chunk, 0, lo + j]
                    hz[j] = states[chunk, 1, lo + j]
                hy[j], hz[j], ay[j], az[j], gw[j], gs[j], gx_t[j] = _step_backward(
                    x_t[j], gy_t[j], w_[j], s_[j], alpha, hy[j], hz[j], ay[j], az[j], gw[j], gs[j])
        # then the common loop, which tests no lengths
        for t in range(every_column_runs - 1, -1, -1):
            x_t, gy_t, gx_t = x[t, lo:hi], grad_y[t, lo:hi], grad_x[t, lo:hi]
            if (t + 1) % ckpt_every == 0:
                hy[:] = states[t // ckpt_every, 0, lo:hi]
                hz[:] = states[t // ckpt_every, 1, lo:hi]
            for j in range(hi - lo):
                hy[j], hz[j], ay[j], az[j], gw[j], gs[j], gx_t[j] = _step_backward(
                    x_t[j], gy_t[j], w_[j], s_[j], alpha, hy[j], hz[j], ay[j], az[j], gw[j], gs[j])
        grad_w_cols[lo:hi] = gw
        grad_s_cols[lo:hi] = gs
        grad_initial[0, lo:hi] = ay
        grad_initial[1, lo:hi] = az


@contextlib.contextmanager
def _torch_threads():
    """Run Numba's parallel loops on torch.get_num_threads() threads (one knob for the whole model)
    and keep that setting: Numba's OpenMP layer shares, and resets, the process's OpenMP count."""
    threads = torch.get_num_threads()
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    try:
        yield numba.get_num_threads()
    finally:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


def _tile(n_cols, threads):
    """Columns per task: enough tasks for every thread, at most MAX_TILE, a multiple of 16."""
    per_thread = -(-n_cols // threads)
    return min(MAX_TILE, -(-per_thread // 16) * 16)


def _rows(t):
    """A contiguous (N, batch, hidden) tensor as the NumPy (N, batch * hidden) array it shares."""
    return t.numpy().reshape(t.shape[0], -1)


def _per_column(v, batch):
    return np.ascontiguousarray(np.tile(v.numpy(), batch))


def _state_columns(state, like, batch, hidden):
    """A (2, B, H) state (or None: zeros) as the contiguous (2, B * H) array the loops read."""
    if state is None:
        return np.zeros((2, batch * hidden), like.dtype)
    return np.ascontiguousarray(state.numpy().reshape(2, batch * hidden))


def _length_columns(lengths, n_steps, batch, hidden):
    """Each column's sequence length (n_steps for all when lengths is None)."""
    if lengths is None:
        return np.full(batch * hidden, n_steps, np.int64)
    return np.repeat(lengths.numpy().astype(np.int64, copy=False), hidden)


@torch.no_grad()
def forward(x, weight, c, initial, lengths, dt, alpha, ckpt_every):
    """x: (N, B, H), initial (2, B, H) or None, lengths (B,) or None ->
    (y: (N, B, H), states: (n_chunks, 2, B, H)), float32 or float64."""
    x = x.contiguous()
    n_steps, batch, hidden = x.shape
    s = dt * torch.sigmoid(c)
    y = torch.empty_like(x)
    states = x.new_empty((num_chunks(n_steps, ckpt_every), 2, batch, hidden))
    xs = _rows(x)
    with _torch_threads() as threads:
        _forward(xs, _per_column(weight, batch), _per_column(s, batch), xs.dtype.type(alpha), ckpt_every,
                 _tile(batch * hidden, threads), _state_columns(initial, xs, batch, hidden),
                 _length_columns(lengths, n_steps, batch, hidden), _rows(y),
                 states.numpy().reshape(states.shape[0], 2, -1))
    return y, states


@torch.no_grad()
def backward(x, weight, c, lengths, states, grad_y, grad_final, dt, alpha, ckpt_every):
    """Gradients of the loss w.r.t. x (N, B, H), weight (H,), c (H,) and the initial state
    (2, B, H), given dL/dy (N, B, H) and dL/d(final state) (2, B, H) or None."""
    x, states, grad_y = x.contiguous(), states.contiguous(), grad_y.contiguous()
    n_steps, batch, hidden = x.shape
    sig = torch.sigmoid(c)
    s = dt * sig
    grad_x = torch.empty_like(x)
    grad_w_cols, grad_s_cols = x.new_empty((batch, hidden)), x.new_empty((batch, hidden))
    grad_initial = x.new_empty((2, batch, hidden))
    xs = _rows(x)
    with _torch_threads() as threads:
        _backward(xs, _per_column(weight, batch), _per_column(s, batch), xs.dtype.type(alpha), ckpt_every,
                  _tile(batch * hidden, threads), _length_columns(lengths, n_steps, batch, hidden),
                  states.numpy().reshape(states.shape[0], 2, -1), _rows(grad_y),
                  _state_columns(grad_final, xs, batch, hidden), _rows(grad_x),
                  grad_w_cols.numpy().reshape(-1), grad_s_cols.numpy().reshape(-1),
                  grad_initial.numpy().reshape(2, -1))
    return grad_x, grad_w_cols.sum(0), grad_s_cols.sum(0) * dt * sig * (1.0 - sig), grad_initial
