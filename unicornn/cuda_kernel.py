"""Compiles ``KERNEL_SOURCE`` with NVRTC through CuPy (once per device) and launches it on PyTorch's
current stream, so the kernels order correctly with other work and can be captured in CUDA graphs.

Only float32 is supported here; ``ops.recurrence`` upcasts float16/bfloat16 inputs before calling.
"""
import numpy as np
import torch

from .kernel_source import KERNEL_SOURCE
from .cpu_path import num_chunks

CUPY_HINT = ("the UnICORNN CUDA kernel is compiled at run time by NVRTC through CuPy, which is not "
             "installed: `pip install cupy-cuda12x` (CUDA 12) or `pip install cupy-cuda13x` (CUDA 13), "
             "matching the CUDA version of your PyTorch (torch.version.cuda = {})")

_functions = {}  # (device index, kernel name, fast_math) -> cupy.RawKernel


def _cupy():
    try:
        import cupy
    except ImportError as err:
        raise ImportError(CUPY_HINT.format(torch.version.cuda)) from err
    return cupy


def nvrtc_options(fast_math=False):
    """Exact tanhf/expf by default; --use_fast_math only when asked for."""
    return ("--std=c++14",) + (("--use_fast_math",) if fast_math else ())


def _function(device_index, name, fast_math):
    key = (device_index, name, fast_math)
    if key not in _functions:
        cupy = _cupy()
        with cupy.cuda.Device(device_index):
            module = cupy.RawModule(code=KERNEL_SOURCE, options=nvrtc_options(fast_math),
                                    backend="nvrtc")
            _functions[key] = module.get_function(name)
    return _functions[key]


def _block_size(n_cols, device):
    """Threads per block: 128, or fewer when that would leave streaming multiprocessors idle
    (psMNIST has only batch * hidden = 8192 columns)."""
    sms = torch.cuda.get_device_properties(device).multi_processor_count
    block = 128
    while block > 32 and -(-n_cols // block) < sms:
        block //= 2
    return block


def _launch(name, device, n_cols, tensors, scalars, fast_math):
    cupy = _cupy()
    function = _function(device.index, name, fast_math)
    block = _block_size(n_cols, device)
    args = tuple(np.uint64(t.data_ptr()) for t in tensors) + scalars
    with torch.cuda.device(device), cupy.cuda.Device(device.index):
        stream = cupy.cuda.ExternalStream(torch.cuda.current_stream(device).cuda_stream)
        with stream:
            function((-(-n_cols // block),), (block,), args)


def _scalars(x, dt, alpha, ckpt_every):
    n_steps, batch, hidden = x.shape
    return (np.int32(n_steps), np.int32(batch * hidden), np.int32(hidden),
            np.float32(dt), np.float32(alpha), np.int32(ckpt_every))


def forward(x, weight, c, dt, alpha, ckpt_every, fast_math=False):
    """x: (N, B, H) float32 CUDA -> (y: (N, B, H), states: (n_chunks, 2, B, H))."""
    x, weight, c = x.contiguous(), weight.contiguous(), c.contiguous()
    y = torch.empty_like(x)
    states = x.new_empty((num_chunks(x.shape[0], ckpt_every), 2) + x.shape[1:])
    _launch("unicornn_forward", x.device, x.shape[1] * x.shape[2], (x, weight, c, y, states),
            _scalars(x, dt, alpha, ckpt_every), fast_math)
    return y, states


def backward(x, weight, c, states, grad_y, dt, alpha, ckpt_every, fast_math=False):
    """Gradients w.r.t. x (N, B, H), weight (H,), c (H,) by reconstructing states backwards."""
    x, weight, c = x.contiguous(), weight.contiguous(), c.contiguous()
    grad_y, states = grad_y.contiguous(), states.contiguous()
    grad_x = torch.empty_like(x)
    grad_w_cols = x.new_empty(x.shape[1:])
    grad_c_cols = x.new_empty(x.shape[1:])
    _launch("unicornn_backward", x.device, x.shape[1] * x.shape[2],
            (x, weight, c, states, grad_y, grad_x, grad_w_cols, grad_c_cols),
            _scalars(x, dt, alpha, ckpt_every), fast_math)
    return grad_x, grad_w_cols.sum(0), grad_c_cols.sum(0)
