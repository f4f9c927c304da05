"""The recurrence on the CPU: which implementation runs it.

Two implementations compute the same algorithm as the CUDA kernel: the compiled loops of
``cpu_compiled`` (Numba; the default) and the PyTorch loop of ``torch_loop`` (the fallback where
Numba cannot compile, with a one-line warning naming why, and the benchmarks' baseline).
``cpu_implementation("torch_loop")`` forces one of them within a ``with`` block (tests, benchmarks,
debugging); it is a context variable, so threads and async tasks each see their own choice.
"""
import contextlib
import contextvars
import warnings

import torch

from . import torch_loop

IMPLEMENTATIONS = ("compiled", "torch_loop")
_forced = contextvars.ContextVar("unicornn_cpu_implementation", default=None)
_compiled = []  # [cpu_compiled or None], decided on first use


@contextlib.contextmanager
def cpu_implementation(name):
    """``with cpu_implementation("torch_loop"):`` runs the CPU recurrence on that implementation
    ("compiled" or "torch_loop"; None: the default choice) until the block ends."""
    if name not in IMPLEMENTATIONS + (None,):
        raise ValueError(f"the CPU implementation must be one of {IMPLEMENTATIONS} or None, got {name!r}")
    token = _forced.set(name)
    try:
        yield
    finally:
        _forced.reset(token)


def compiled_module():
    """``cpu_compiled`` if Numba imports and compiles it here, else None (warned once, with the cause)."""
    if not _compiled:
        try:
            from . import cpu_compiled
            x = torch.zeros(2, 1, 1)
            y, states = cpu_compiled.forward(x, x[0, 0], x[0, 0], None, None, 0.1, 1.0, 1)  # compiles or loads
            cpu_compiled.backward(x, x[0, 0], x[0, 0], None, states, y, None, 0.1, 1.0, 1)
            _compiled.append(cpu_compiled)
        except Exception as err:  # Numba missing, or it cannot compile for this machine
            missing = isinstance(err, ImportError) and err.name in ("numba", "llvmlite")
            advice = "pip install numba" if missing else "the error above says why"
            warnings.warn(f"unicornn: the compiled CPU path is unavailable ({type(err).__name__}: {err}); "
                          f"using the slower PyTorch loop ({advice})", RuntimeWarning, stacklevel=3)
            _compiled.append(None)
    return _compiled[0]


def implementation():
    """The module that runs the CPU recurrence here and now: ``cpu_compiled`` or ``torch_loop``."""
    forced = _forced.get()
    if forced == "torch_loop":
        return torch_loop
    module = compiled_module()
    if module is None:
        if forced == "compiled":
            raise RuntimeError("cpu_implementation('compiled') was asked for, but Numba cannot build the "
                               "compiled path here (see the warning above)")
        return torch_loop
    return module


def forward(x, weight, c, initial, lengths, dt, alpha, ckpt_every):
    """x: (N, B, H), initial (2, B, H) or None, lengths (B,) int64 or None ->
    (y: (N, B, H), states: (n_chunks, 2, B, H))."""
    return implementation().forward(x, weight, c, initial, lengths, dt, alpha, ckpt_every)


def backward(x, weight, c, lengths, states, grad_y, grad_final, dt, alpha, ckpt_every):
    """(dL/dx, dL/dw, dL/dc, dL/d(initial state)) by reconstructing the states backwards."""
    return implementation().backward(x, weight, c, lengths, states, grad_y, grad_final, dt, alpha, ckpt_every)
