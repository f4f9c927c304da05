"""``recurrence``: the UnICORNN recurrence with an O(1)-memory backward, dispatched by device to the
CUDA kernel (``cuda_kernel.py``) or the CPU path (``cpu_path.py``).

Both are registered as ``torch.library`` custom ops with fake implementations, so ``torch.compile``
traces around them, and wired into autograd: the forward saves x, w, c and the chunk-end states;
the backward reconstructs every other hidden state.
"""
import torch
from torch import Tensor

from . import cpu_path, cuda_kernel
from .cpu_path import num_chunks
from .validation import check_recurrence_inputs

# Save (y, z) every 64 steps: 2/64 = 3% of the output's memory, and the backward's reconstruction
# then runs at most 64 steps from an exact state, which keeps float32 gradients within ~1e-5 of
# float64 even at N = 17984 (the 2021 scheme, ckpt_every=None, drifts by ~1e-4 there).
DEFAULT_CKPT_EVERY = 64


@torch.library.custom_op("unicornn::recurrence_forward", mutates_args=())
def _forward(x: Tensor, weight: Tensor, c: Tensor, dt: float, alpha: float, ckpt_every: int,
             fast_math: bool, prefetch: int) -> tuple[Tensor, Tensor]:
    if x.is_cuda:
        return cuda_kernel.forward(x, weight, c, dt, alpha, ckpt_every, fast_math, prefetch)
    return cpu_path.forward(x, weight, c, dt, alpha, ckpt_every)


@_forward.register_fake
def _(x, weight, c, dt, alpha, ckpt_every, fast_math, prefetch):
    return torch.empty_like(x), x.new_empty((num_chunks(x.shape[0], ckpt_every), 2, x.shape[1], x.shape[2]))


@torch.library.custom_op("unicornn::recurrence_backward", mutates_args=())
def _backward(x: Tensor, weight: Tensor, c: Tensor, states: Tensor, grad_y: Tensor, dt: float,
              alpha: float, ckpt_every: int, fast_math: bool, prefetch: int) -> tuple[Tensor, Tensor, Tensor]:
    if x.is_cuda:
        return cuda_kernel.backward(x, weight, c, states, grad_y, dt, alpha, ckpt_every, fast_math, prefetch)
    return cpu_path.backward(x, weight, c, states, grad_y, dt, alpha, ckpt_every)


@_backward.register_fake
def _(x, weight, c, states, grad_y, dt, alpha, ckpt_every, fast_math, prefetch):
    return torch.empty_like(x), torch.empty_like(weight), torch.empty_like(c)


def _setup_context(ctx, inputs, output):
    x, weight, c, dt, alpha, ckpt_every, fast_math, prefetch = inputs
    ctx.save_for_backward(x, weight, c, output[1])
    ctx.constants = (dt, alpha, ckpt_every, fast_math, prefetch)


def _autograd_backward(ctx, grad_y, _grad_states):
    x, weight, c, states = ctx.saved_tensors
    grad_x, grad_w, grad_c = _backward(x, weight, c, states, grad_y, *ctx.constants)
    return grad_x, grad_w, grad_c, None, None, None, None, None


_forward.register_autograd(_autograd_backward, setup_context=_setup_context)


def recurrence(x, weight, c, dt, alpha, *, ckpt_every=DEFAULT_CKPT_EVERY, fast_math=False, prefetch=None):
    """The UnICORNN recurrence (paper eq. 3) with a reconstructing, O(1)-memory backward.

    x: (seq_len, batch, hidden); weight, c: (hidden,); dt > 0, alpha >= 0. Returns y_1..y_N with
    the shape and dtype of x. float32 on CUDA (CuPy needed), float32 or float64 on CPU; float16 and
    bfloat16 inputs (e.g. under torch.autocast) are computed in float32 and returned in their dtype.
    ckpt_every: save the state every that many steps for the backward (None: only the final state,
    as the 2021 code). fast_math: compile the CUDA kernel with --use_fast_math (approximate tanh).
    prefetch: how many steps ahead the CUDA kernel loads x and dL/dy, one of
    cuda_kernel.PREFETCH_DEPTHS (None: cuda_kernel.DEFAULT_PREFETCH); no effect on the CPU.
    """
    dt, alpha = check_recurrence_inputs(x, weight, c, dt, alpha)
    if x.numel() == 0:  # an empty batch (as nn.LSTM accepts), N = 0 or no units: nothing to run
        return (x + 0.0 * (weight + c)).to(x.dtype)  # empty, with zero gradients for weight and c
    if ckpt_every is None:
        ckpt_every = x.shape[0]
    if not isinstance(ckpt_every, int) or ckpt_every < 1:
        raise ValueError(f"ckpt_every must be an int >= 1 or None, got {ckpt_every!r}")
    prefetch = cuda_kernel.DEFAULT_PREFETCH if prefetch is None else prefetch
    if prefetch not in cuda_kernel.PREFETCH_DEPTHS:
        raise ValueError(f"prefetch must be one of {cuda_kernel.PREFETCH_DEPTHS} or None, got {prefetch!r}")
    wide = torch.float64 in (x.dtype, weight.dtype)
    if x.device.type == "cuda" and wide:
        raise ValueError("the CUDA kernel computes in float32: pass float32 (or float16/bfloat16) "
                         "tensors, or use reference_recurrence for float64 on the GPU")
    if x.device.type not in ("cpu", "cuda"):
        raise ValueError(f"recurrence runs on 'cpu' or 'cuda' tensors, got device {x.device}")
    compute = torch.float64 if wide else torch.float32
    y, _ = _forward(x.to(compute), weight.to(compute), c.to(compute), dt, alpha, ckpt_every,
                    bool(fast_math), int(prefetch))
    return y.to(x.dtype)
