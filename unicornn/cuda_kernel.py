"""Compiles ``KERNEL_SOURCE`` with NVRTC through CuPy (once per device, prefetch depth and fast-math
setting) and launches it on PyTorch's current stream, so the kernels order correctly with other
work and can be captured in CUDA graphs.

A launch is described by a ``LaunchPlan`` (grid, block, the arguments in the kernel's parameter
order, the output tensors), built by ``forward_plan`` / ``backward_plan``. The CuPy launcher here and
the CPU emulator of the tests (``tests/kernel_emulator.py``) consume the same plans, so a change of
argument order, types or launch shape is caught without a GPU.

Only float32 runs on the GPU; ``ops.recurrence`` upcasts float16/bfloat16 inputs before calling.
"""
import dataclasses

import numpy as np
import torch

from .chunks import num_chunks
from .kernel_source import KERNEL_SOURCE

CUPY_HINT = ("the UnICORNN CUDA kernel is compiled at run time by NVRTC through CuPy, which is not "
             "installed: `pip install cupy-cuda12x` (CUDA 12) or `pip install cupy-cuda13x` (CUDA 13), "
             "matching the CUDA version of your PyTorch (torch.version.cuda = {})")
# Steps of x (and dL/dy) whose loads are issued ahead (-DPREFETCH=K). 16 is the depth a forward-only
# probe on an H100 supported (1.7-2x over K=1); the full kernels' best K is not measured yet
# (benchmarks/speed.py times every K).
PREFETCH_DEPTHS = (1, 2, 4, 8, 16)
DEFAULT_PREFETCH = 16
BLOCK_SIZES = (128, 64, 32)

_functions = {}  # (device index, kernel name, fast_math, prefetch) -> cupy.RawKernel


@dataclasses.dataclass
class LaunchPlan:
    kernel: str
    grid: tuple
    block: tuple
    args: tuple      # tensors and NumPy scalars, in the kernel's parameter order
    outputs: tuple   # the tensors the kernel writes, allocated by the plan


def _cupy():
    try:
        import cupy
    except ImportError as err:
        raise ImportError(CUPY_HINT.format(torch.version.cuda)) from err
    return cupy


def nvrtc_options(fast_math=False, prefetch=DEFAULT_PREFETCH):
    """Exact tanhf/expf by default; --use_fast_math only when asked for."""
    return ("--std=c++14", f"-DPREFETCH={int(prefetch)}") + (("--use_fast_math",) if fast_math else ())


def block_size(n_cols, sm_count):
    """Threads per block: 128, or fewer when that would leave streaming multiprocessors idle
    (psMNIST has only batch * hidden = 8192 columns)."""
    block = BLOCK_SIZES[0]
    while block > BLOCK_SIZES[-1] and -(-n_cols // block) < sm_count:
        block //= 2
    return block


def _scalars(x, dt, alpha, ckpt_every):
    """(n_steps, n_cols, hidden, dt, alpha, ckpt_every) typed as the kernel declares them; the
    floats in x's dtype (float32 on the GPU; the emulator's double build passes float64)."""
    n_steps, batch, hidden = x.shape
    real = np.float64 if x.dtype == torch.float64 else np.float32
    return (np.int32(n_steps), np.int32(batch * hidden), np.int32(hidden), real(dt), real(alpha),
            np.int32(ckpt_every))


def _grid(x, block):
    return (-(-(x.shape[1] * x.shape[2]) // block), 1, 1), (block, 1, 1)


def forward_plan(x, weight, c, initial, lengths, dt, alpha, ckpt_every, block, empty=torch.empty):
    """unicornn_forward(x, weight, c, initial, lengths, y, states, n_steps, n_cols, hidden, dt, alpha,
    ckpt_every): outputs y (N, B, H) and the chunk-end states (n_chunks, 2, B, H). ``initial``
    (2, B, H) and ``lengths`` (B,) int32 may be None (a null pointer: zeros, every sequence N
    steps). ``empty(shape, dtype, device)`` allocates the outputs (the tests surround them with
    guard zones)."""
    n_steps, batch, hidden = x.shape
    y = empty(x.shape, dtype=x.dtype, device=x.device)
    states = empty((num_chunks(n_steps, ckpt_every), 2, batch, hidden), dtype=x.dtype, device=x.device)
    grid, threads = _grid(x, block)
    return LaunchPlan("unicornn_forward", grid, threads,
                      (x, weight, c, initial, lengths, y, states) + _scalars(x, dt, alpha, ckpt_every),
                      (y, states))


def backward_plan(x, weight, c, lengths, states, grad_y, grad_final, dt, alpha, ckpt_every, block,
                  empty=torch.empty):
    """unicornn_backward(x, weight, c, lengths, states, grad_y, grad_final, grad_x, grad_w_cols,
    grad_c_cols, grad_initial, n_steps, n_cols, hidden, dt, alpha, ckpt_every): outputs dL/dx
    (N, B, H), per-column dL/dw, dL/dc (B, H), which the caller sums over the batch, and
    dL/d(y_0, z_0) (2, B, H). ``lengths`` and ``grad_final`` (2, B, H) may be None."""
    n_steps, batch, hidden = x.shape
    grad_x = empty(x.shape, dtype=x.dtype, device=x.device)
    grad_w_cols = empty((batch, hidden), dtype=x.dtype, device=x.device)
    grad_c_cols = empty((batch, hidden), dtype=x.dtype, device=x.device)
    grad_initial = empty((2, batch, hidden), dtype=x.dtype, device=x.device)
    grid, threads = _grid(x, block)
    return LaunchPlan("unicornn_backward", grid, threads,
                      (x, weight, c, lengths, states, grad_y, grad_final, grad_x, grad_w_cols, grad_c_cols,
                       grad_initial) + _scalars(x, dt, alpha, ckpt_every),
                      (grad_x, grad_w_cols, grad_c_cols, grad_initial))


def _function(device_index, name, fast_math, prefetch):
    key = (device_index, name, fast_math, prefetch)
    if key not in _functions:
        cupy = _cupy()
        with cupy.cuda.Device(device_index):
            module = cupy.RawModule(code=KERNEL_SOURCE, options=nvrtc_options(fast_math, prefetch),
                                    backend="nvrtc")
            _functions[key] = module.get_function(name)
    return _functions[key]


def function_attributes(device, prefetch, fast_math=False):
    """{kernel: {"num_regs", "local_size_bytes"}} of the module compiled for ``prefetch``: registers
    per thread and local memory (register spills) per thread, read with cuFuncGetAttribute."""
    device = torch.device(device)
    return {name: {"num_regs": int(f.num_regs), "local_size_bytes": int(f.local_size_bytes)}
            for name in ("unicornn_forward", "unicornn_backward")
            for f in [_function(device.index or 0, name, fast_math, prefetch)]}


def _pointer(arg):
    """A kernel argument as CuPy passes it: tensors by address, None as a null pointer."""
    if arg is None:
        return np.uint64(0)
    return np.uint64(arg.data_ptr()) if isinstance(arg, torch.Tensor) else arg


def launch(plan, device, fast_math=False, prefetch=DEFAULT_PREFETCH):
    cupy = _cupy()
    function = _function(device.index, plan.kernel, fast_math, prefetch)
    args = tuple(_pointer(a) for a in plan.args)
    with torch.cuda.device(device), cupy.cuda.Device(device.index):
        stream = cupy.cuda.ExternalStream(torch.cuda.current_stream(device).cuda_stream)
        with stream:
            function(plan.grid, plan.block, args)


def _block_for(x):
    return block_size(x.shape[1] * x.shape[2], torch.cuda.get_device_properties(x.device).multi_processor_count)


def _contiguous(*tensors):
    return tuple(None if t is None else t.contiguous() for t in tensors)


def _kernel_lengths(lengths, device):
    return None if lengths is None else lengths.to(device=device, dtype=torch.int32).contiguous()


def forward(x, weight, c, initial, lengths, dt, alpha, ckpt_every, fast_math=False, prefetch=DEFAULT_PREFETCH):
    """x: (N, B, H) float32 CUDA, initial (2, B, H) or None, lengths (B,) or None ->
    (y: (N, B, H), states: (n_chunks, 2, B, H))."""
    x, weight, c, initial = _contiguous(x, weight, c, initial)
    plan = forward_plan(x, weight, c, initial, _kernel_lengths(lengths, x.device), dt, alpha, ckpt_every,
                        _block_for(x))
    launch(plan, x.device, fast_math, prefetch)
    return plan.outputs


def backward(x, weight, c, lengths, states, grad_y, grad_final, dt, alpha, ckpt_every, fast_math=False,
             prefetch=DEFAULT_PREFETCH):
    """(dL/dx, dL/dw, dL/dc, dL/d(initial state)) by reconstructing the states backwards."""
    x, weight, c, states, grad_y, grad_final = _contiguous(x, weight, c, states, grad_y, grad_final)
    plan = backward_plan(x, weight, c, _kernel_lengths(lengths, x.device), states, grad_y, grad_final, dt,
                         alpha, ckpt_every, _block_for(x))
    launch(plan, x.device, fast_math, prefetch)
    grad_x, grad_w_cols, grad_c_cols, grad_initial = plan.outputs
    return grad_x, grad_w_cols.sum(0), grad_c_cols.sum(0), grad_initial
