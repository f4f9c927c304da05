"""``recurrence`` and ``step``: the UnICORNN recurrence with an O(1)-memory backward, dispatched by
device to the CUDA kernel (``cuda_kernel.py``) or the CPU path (``cpu_path.py``).

Two ``torch.library`` custom ops do the work: ``unicornn::recurrence_forward`` (outputs, chunk-end
states, final state) and ``unicornn::recurrence_backward`` (gradients by reconstructing the states
backwards). Each has a fake implementation (``torch.compile``) and a vmap rule (``batching.py``); the
forward op has an autograd formula, so it works on its own. ``recurrence`` reaches them through
``Recurrence``, an autograd.Function with the same backward plus a forward-mode rule
(``tangents.py``) and a generated vmap rule, so ``torch.func`` transforms (grad, jacrev, jvp,
jacfwd, vmap) and ``torch.autograd.forward_ad`` work as they do on PyTorch ops.
"""
import inspect
from typing import Optional

import torch
from torch import Tensor

from . import cpu_path, cuda_kernel
from .batching import register_vmap_rules
from .chunks import num_chunks
from .tangents import tangent_recurrence
from .validation import check_initial_state, check_length_values, check_lengths, check_recurrence_inputs

# Save (y, z) every 64 steps: 2/64 = 3% of the output's memory, and the backward's reconstruction
# then runs at most 64 steps from an exact state, which keeps float32 gradients within ~1e-5 of
# float64 even at N = 17984 (the 2021 scheme, ckpt_every=None, drifts by ~1e-4 there).
DEFAULT_CKPT_EVERY = 64
SECOND_DERIVATIVES = ("unicornn.recurrence: second derivatives (double backward with create_graph=True, "
                      "torch.func.hessian, a derivative of a gradient) are not supported by the "
                      "reconstructing backward pass; use unicornn.reference_recurrence (plain autograd) for them")


@torch.library.custom_op("unicornn::recurrence_forward", mutates_args=())
def _forward(x: Tensor, weight: Tensor, c: Tensor, initial: Optional[Tensor], lengths: Optional[Tensor],
             dt: float, alpha: float, ckpt_every: int, fast_math: bool, prefetch: int) -> tuple[Tensor, Tensor, Tensor]:
    """-> y (N, B, H), states at chunk ends (n_chunks, 2, B, H), final state (2, B, H); contiguous."""
    x, weight, c = x.contiguous(), weight.contiguous(), c.contiguous()
    initial = None if initial is None else initial.contiguous()
    lengths = check_length_values(lengths, x.shape[0])
    if x.is_cuda:
        y, states = cuda_kernel.forward(x, weight, c, initial, lengths, dt, alpha, ckpt_every, fast_math, prefetch)
    else:
        y, states = cpu_path.forward(x, weight, c, initial, lengths, dt, alpha, ckpt_every)
    return y, states, states[-1].clone()  # a sequence's state stays put past its length


@_forward.register_fake
def _(x, weight, c, initial, lengths, dt, alpha, ckpt_every, fast_math, prefetch):
    n_steps, batch, hidden = x.shape
    return (x.new_empty((n_steps, batch, hidden)),
            x.new_empty((num_chunks(n_steps, ckpt_every), 2, batch, hidden)), x.new_empty((2, batch, hidden)))


@torch.library.custom_op("unicornn::recurrence_backward", mutates_args=())
def _backward(x: Tensor, weight: Tensor, c: Tensor, lengths: Optional[Tensor], states: Tensor, grad_y: Tensor,
              grad_final: Optional[Tensor], dt: float, alpha: float, ckpt_every: int, fast_math: bool,
              prefetch: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """-> dL/dx (N, B, H), dL/dw (H,), dL/dc (H,), dL/d(y_0, z_0) (2, B, H); contiguous."""
    x, weight, c, states, grad_y = (t.contiguous() for t in (x, weight, c, states, grad_y))
    grad_final = None if grad_final is None else grad_final.contiguous()
    lengths = check_length_values(lengths, x.shape[0])
    if x.is_cuda:
        return cuda_kernel.backward(x, weight, c, lengths, states, grad_y, grad_final, dt, alpha, ckpt_every,
                                    fast_math, prefetch)
    return cpu_path.backward(x, weight, c, lengths, states, grad_y, grad_final, dt, alpha, ckpt_every)


@_backward.register_fake
def _(x, weight, c, lengths, states, grad_y, grad_final, dt, alpha, ckpt_every, fast_math, prefetch):
    batch, hidden = x.shape[1:]
    return (x.new_empty(tuple(x.shape)), weight.new_empty((hidden,)), c.new_empty((hidden,)),
            x.new_empty((2, batch, hidden)))


def _keep_signature(function_class):
    """autograd.Function.apply binds each call's arguments to ``forward``'s signature (for
    setup_context); with the signature kept in ``__signature__`` that takes 19 instead of 57 µs."""
    function_class.forward.__signature__ = inspect.signature(function_class.forward)
    return function_class


def _setup_context(ctx, inputs, output):
    x, weight, c, initial, lengths, dt, alpha, ckpt_every, fast_math, prefetch = inputs
    ctx.mark_non_differentiable(output[1])  # the chunk-end states exist for the backward pass only
    ctx.save_for_backward(x, weight, c, lengths, output[1])
    ctx.save_for_forward(x, weight, c, initial, lengths)
    ctx.constants = (dt, alpha, ckpt_every, fast_math, prefetch)
    ctx.has_initial = initial is not None


def _backward_formula(ctx, grad_y, grad_states, grad_final):
    """dL/dx, dL/dw, dL/dc, dL/d(initial state) from the saved inputs and chunk-end states."""
    x, weight, c, lengths, states = ctx.saved_tensors
    if grad_y is None:
        grad_y = torch.zeros_like(x)
    grad_x, grad_w, grad_c, grad_initial = RecurrenceBackward.apply(x, weight, c, lengths, states, grad_y,
                                                                    grad_final, *ctx.constants)
    return (grad_x, grad_w, grad_c, grad_initial if ctx.has_initial else None) + (None,) * 6


@_keep_signature
class RecurrenceBackward(torch.autograd.Function):
    """``_backward`` as a function of its inputs, for first derivatives only: a second derivative
    (create_graph=True, torch.func.hessian, grad of grad) raises instead of silently giving zero."""
    generate_vmap_rule = True

    @staticmethod
    def forward(*inputs):
        return _backward(*inputs)

    @staticmethod
    def setup_context(ctx, inputs, output):
        pass

    @staticmethod
    def backward(ctx, *grads):
        raise RuntimeError(SECOND_DERIVATIVES)

    @staticmethod
    def jvp(ctx, *tangents):
        raise RuntimeError(SECOND_DERIVATIVES)


_forward.register_autograd(_backward_formula, setup_context=_setup_context)
register_vmap_rules(_forward, _backward)


@_keep_signature
class Recurrence(torch.autograd.Function):
    """``_forward`` with the backward formula above, a forward-mode rule and a vmap rule generated from
    the ops' own: what ``torch.func`` and ``torch.autograd.forward_ad`` need."""
    generate_vmap_rule = True

    @staticmethod
    def forward(x, weight, c, initial, lengths, dt, alpha, ckpt_every, fast_math, prefetch):
        return _forward(x, weight, c, initial, lengths, dt, alpha, ckpt_every, fast_math, prefetch)

    setup_context = staticmethod(_setup_context)

    @staticmethod
    def backward(ctx, grad_y, grad_states, grad_final):
        return _backward_formula(ctx, grad_y, grad_states, grad_final)

    @staticmethod
    def jvp(ctx, dx, dweight, dc, dinitial, *_):
        x, weight, c, initial, lengths = ctx.saved_tensors
        dt, alpha = ctx.constants[:2]
        dy, dfinal = tangent_recurrence(x, weight, c, initial, lengths, dt, alpha, dx, dweight, dc, dinitial)
        return dy, None, dfinal


def _empty_result(x, weight, c, initial):
    """An empty batch (as nn.LSTM accepts), N = 0 or no units: nothing to run. The outputs still
    depend on weight and c (zero gradients) and the final state is the initial state."""
    y = (x + 0.0 * (weight + c)).to(x.dtype)
    final = x.new_zeros((2,) + tuple(x.shape[1:])) if initial is None else initial.to(x.dtype)
    return y, final


def recurrence(x, weight, c, dt, alpha, *, initial_state=None, lengths=None, return_state=False,
               ckpt_every=DEFAULT_CKPT_EVERY, fast_math=False, prefetch=None):
    """The UnICORNN recurrence (paper eq. 3) with a reconstructing, O(1)-memory backward.

    x: (seq_len, batch, hidden); weight, c: (hidden,); dt > 0, alpha >= 0. Returns y_1..y_N with
    the shape and dtype of x, and with ``return_state=True`` the pair ``(y, (y_n, z_n))``.
    initial_state: (y_0, z_0), each (batch, hidden) (default zeros); gradients flow into both.
    lengths: (batch,) integers in [0, seq_len] (a CPU tensor avoids a device sync): sequence b runs
    lengths[b] steps, y[t, b] = 0 for t >= lengths[b], its final state is the state after its own
    last step, and nothing past a length affects any output or gradient (padding may hold NaN).
    float32 on CUDA (CuPy needed), float32 or float64 on CPU; float16 and bfloat16 inputs (e.g. under
    torch.autocast) are computed in float32 and returned in their dtype.
    ckpt_every: save the state every that many steps for the backward (None: only the final state,
    as the 2021 code). fast_math: compile the CUDA kernel with --use_fast_math (approximate tanh).
    prefetch: how many steps ahead the CUDA kernel loads x and dL/dy, one of
    cuda_kernel.PREFETCH_DEPTHS (None: cuda_kernel.DEFAULT_PREFETCH); no effect on the CPU.
    """
    dt, alpha = check_recurrence_inputs(x, weight, c, dt, alpha)
    initial = check_initial_state(initial_state, x)
    lengths = check_lengths(lengths, x)
    if ckpt_every is None:
        ckpt_every = max(x.shape[0], 1)
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
    if x.numel() == 0:
        y, final = _empty_result(x, weight, c, initial)
    else:
        compute = torch.float64 if wide else torch.float32
        # torch.compile cannot trace an autograd.Function with a forward-mode rule; the op itself,
        # with its autograd formula, is what it traces (and torch.func is not used inside it)
        run = _forward if torch.compiler.is_compiling() else Recurrence.apply
        y, _, final = run(x.to(compute), weight.to(compute), c.to(compute),
                          None if initial is None else initial.to(compute), lengths, dt, alpha, ckpt_every,
                          bool(fast_math), int(prefetch))
        y, final = y.to(x.dtype), final.to(x.dtype)
    return (y, (final[0], final[1])) if return_state else y


def step(x_t, weight, c, dt, alpha, state=None, **options):
    """One time step, for inference one input at a time: x_t (batch, hidden), state (y, z) or None
    (zeros) -> (y_t, (y_t, z_t)). Equal to the first step of ``recurrence`` from that state."""
    if not isinstance(x_t, torch.Tensor) or x_t.dim() != 2:
        raise ValueError(f"x_t must be a (batch, hidden) tensor, got "
                         f"{tuple(x_t.shape) if isinstance(x_t, torch.Tensor) else type(x_t).__name__}")
    y, new_state = recurrence(x_t[None], weight, c, dt, alpha, initial_state=state, return_state=True, **options)
    return y[0], new_state
