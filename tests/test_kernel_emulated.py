"""The CUDA kernel source, unchanged, run on the CPU through the emulator (``kernel_emulator.py``) and
launched through the same plans as the CuPy launcher (``cuda_kernel.forward_plan`` /
``backward_plan``), for every prefetch depth K:

- a double build (float -> double) matches the float64 autograd reference to 1e-12: logic errors
  cannot hide behind rounding;
- the float32 build, as on the GPU, stays within the core tests' bounds, and every K gives the same
  bits as K = 1 and as the kernel before prefetching (a saved artifact);
- outputs and inputs lie between guard zones (NaN before, an inaccessible page after): a write or a
  read out of bounds or an output element left unwritten fails;
- the emulator itself is tested on toy kernels that need shared memory, barriers, warp collectives
  and atomics, and it catches a deleted ``__syncthreads``.

These tests run in CI; they may skip only where no C++ compiler exists and CI is not set.
"""
import os
import pathlib

import numpy as np
import pytest
import torch

import kernel_emulator as emulator
from conftest import (max_rel_errs, outputs_and_grads, random_problem, random_state_problem, state_outputs_and_grads,
                      with_padding)
from unicornn import KERNEL_SOURCE, cuda_kernel, reference_recurrence

DATA = pathlib.Path(__file__).with_name("data")
PAPER_SETTINGS = [(0.19, 30.65), (0.126, 13.0), (0.011, 9.0), (0.0343, 0.0)]
SHAPES = [(1, 1, 1), (1, 3, 5), (7, 1, 1), (50, 1, 33), (64, 2, 31), (130, 3, 65)]  # 195 columns: partial block
KS = cuda_kernel.PREFETCH_DEPTHS


@pytest.fixture(scope="module", autouse=True)
def _compiler():
    if emulator.compiler() is None:
        if os.environ.get("CI"):
            pytest.fail("CI needs a C++ compiler for the emulated kernel tests (.ci/run installs g++)")
        pytest.skip("no C++ compiler (g++) here; CI runs these tests")


def kernel(prefetch, double=False):
    return emulator.build(KERNEL_SOURCE, double=double, defines={"PREFETCH": prefetch})


# ---- guard zones ----------------------------------------------------------------------------------

GUARD = 64
PAYLOAD = {torch.float32: (torch.int32, 0x7FC0BEEF), torch.float64: (torch.int64, 0x7FF80000DEADBEEF),
           torch.int32: (torch.int32, 0x7FC0BEEF)}


class Guarded:
    """Allocates tensors that end where an inaccessible page begins (an access past the end stops
    the launch) and start after GUARD elements holding a NaN with a payload of its own: a write
    before the start changes those bits, a read before it brings a NaN into the results, and an
    output element the kernel never writes stays NaN."""

    def __init__(self):
        self.buffers = []

    def empty(self, shape, dtype, device="cpu"):
        numel = int(np.prod(shape))
        bits_dtype, payload = PAYLOAD[dtype]
        base = emulator.fenced_empty(numel + GUARD, dtype)
        base.view(bits_dtype).fill_(payload)
        self.buffers.append((base, numel))
        return base[GUARD:].view(shape)

    def place(self, tensor):
        out = self.empty(tensor.shape, tensor.dtype)
        out.copy_(tensor)
        return out

    def check(self, outputs):
        for base, _ in self.buffers:
            bits_dtype, payload = PAYLOAD[base.dtype]
            assert torch.all(base[:GUARD].view(bits_dtype) == payload), "the kernel wrote before a buffer"
        for t in outputs:
            assert not torch.isnan(t).any(), "an output element was not written (or a NaN was read)"


def emulated(module, x, w, c, grad_y, dt, alpha, ckpt_every, block, initial=None, lengths=None, grad_final=None):
    """Forward and backward through the launch plans; [y, dx, dw, dc, states, dL/d(initial state)],
    guards checked. initial, grad_final (2, B, H) and lengths (B,) may be None (null pointers)."""
    guard = Guarded()
    x, w, c, grad_y = (guard.place(t.contiguous()) for t in (x, w, c, grad_y))
    initial, grad_final = (None if t is None else guard.place(t.to(x.dtype).contiguous()) for t in (initial, grad_final))
    if lengths is not None:
        lengths = guard.place(torch.as_tensor(lengths, dtype=torch.int32))
    plan = cuda_kernel.forward_plan(x, w, c, initial, lengths, dt, alpha, ckpt_every, block, empty=guard.empty)
    module.launch(plan.kernel, plan.grid, plan.block, plan.args)
    y, states = plan.outputs
    plan = cuda_kernel.backward_plan(x, w, c, lengths, guard.place(states), grad_y, grad_final, dt, alpha,
                                     ckpt_every, block, empty=guard.empty)
    module.launch(plan.kernel, plan.grid, plan.block, plan.args)
    guard.check([y, states, *plan.outputs])
    grad_x, grad_w_cols, grad_c_cols, grad_initial = plan.outputs
    return [y, grad_x, grad_w_cols.sum(0), grad_c_cols.sum(0), states, grad_initial]


def reference(problem, dt, alpha, dtype):
    return outputs_and_grads(lambda x, w, c: reference_recurrence(x, w, c, dt, alpha), *problem, dtype)


def exact(value):
    """dt and alpha as float32 would round them, so float32 and float64 runs see one number."""
    return float(np.float32(value))


# ---- the UnICORNN kernels -----------------------------------------------------------------------

@pytest.mark.parametrize("prefetch", KS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("ckpt", [1, 7, 64, "N", "N+5"])
def test_double_build_matches_the_float64_reference(prefetch, shape, ckpt):
    n = shape[0]
    ckpt_every = {"N": n, "N+5": n + 5}.get(ckpt, ckpt)
    dt, alpha = exact(0.19), exact(30.65)
    problem = [t.double() for t in random_problem(*shape, seed=n + shape[2])]
    truth = reference(problem, dt, alpha, torch.float64)
    ours = emulated(kernel(prefetch, double=True), *problem, dt, alpha, ckpt_every, block=32)
    assert max(max_rel_errs(ours[:4], truth)) <= 1e-12


@pytest.mark.parametrize("prefetch", KS)
@pytest.mark.parametrize("block", cuda_kernel.BLOCK_SIZES)
def test_every_block_size_the_launcher_can_choose(prefetch, block):
    assert {cuda_kernel.block_size(cols, sms) for cols in (195, 8192, 32768) for sms in (1, 100, 132)} == \
        set(cuda_kernel.BLOCK_SIZES)
    problem = [t.double() for t in random_problem(70, 3, 65, seed=block)]  # 195 columns, partial last block
    truth = reference(problem, 0.125, 2.0, torch.float64)
    ours = emulated(kernel(prefetch, double=True), *problem, 0.125, 2.0, 16, block)
    assert max(max_rel_errs(ours[:4], truth)) <= 1e-12


@pytest.mark.parametrize("prefetch", KS)
@pytest.mark.parametrize("shape", SHAPES[2:])
@pytest.mark.parametrize("dt,alpha", PAPER_SETTINGS)
def test_float32_build_within_the_core_bounds(prefetch, shape, dt, alpha):
    problem = random_problem(*shape, seed=7 * shape[0] + shape[2])
    truth = reference(problem, dt, alpha, torch.float64)
    float32_loop = reference(problem, dt, alpha, torch.float32)
    ours = emulated(kernel(prefetch), *problem, dt, alpha, 64, block=64)
    for mine, theirs in zip(max_rel_errs(ours[:4], truth), max_rel_errs(float32_loop, truth)):
        assert mine <= max(2e-5, 1.25 * theirs), (mine, theirs)


@pytest.fixture(scope="module")
def eigenworms_problem():
    """N = 17984 with the EigenWorms dt (second layer), the loss on the last step as in training."""
    problem = random_problem(17984, 1, 8, seed=21, x_scale=0.3, last_step_loss=True)
    dt = exact(0.0343)
    return problem, dt, reference([t.double() for t in problem], dt, 0.0, torch.float64)


@pytest.mark.parametrize("prefetch", KS)
def test_eigenworms_length(prefetch, eigenworms_problem):
    problem, dt, truth = eigenworms_problem
    double = emulated(kernel(prefetch, double=True), *[t.double() for t in problem], dt, 0.0, 64, block=32)
    assert max(max_rel_errs(double[:4], truth)) <= 1e-12
    single = emulated(kernel(prefetch), *problem, dt, 0.0, 64, block=32)
    assert max(max_rel_errs(single[:4], truth)) <= 1.5e-4  # the core test's bound at this length


def test_eigenworms_first_layer_needs_the_compensated_sums():
    """dt = 2.81e-5 at N = 17984 (see test_recurrence.EIGENWORMS_FIRST_LAYER_Y_BOUND): the kernel keeps y
    within the bound; the same kernel with plain sums does not, so the bound notices their removal."""
    from test_recurrence import EIGENWORMS_FIRST_LAYER_Y_BOUND
    dt = exact(2.81e-5)
    problem = random_problem(17984, 1, 16, seed=21, x_scale=0.3, last_step_loss=True)
    truth = reference([t.double() for t in problem], dt, 0.0, torch.float64)
    plain_sums = KERNEL_SOURCE.replace("const float step = increment - lost;", "const float step = increment;")
    assert plain_sums != KERNEL_SOURCE
    errors = {}
    for name, source in (("compensated", KERNEL_SOURCE), ("plain", plain_sums)):
        module = emulator.build(source, defines={"PREFETCH": cuda_kernel.DEFAULT_PREFETCH})
        errors[name] = max_rel_errs(emulated(module, *problem, dt, 0.0, 64, block=32)[:4], truth)
    assert errors["compensated"][0] <= EIGENWORMS_FIRST_LAYER_Y_BOUND, errors
    assert errors["plain"][0] > EIGENWORMS_FIRST_LAYER_Y_BOUND, errors


@pytest.mark.parametrize("shape,ckpt_every,block", [((130, 3, 65), 64, 128), ((50, 3, 37), 7, 32),
                                                    ((40, 2, 20), 1000, 64)])
def test_every_prefetch_depth_gives_the_same_bits(shape, ckpt_every, block):
    """Prefetching changes when loads are issued, never the arithmetic: K = 1 ... 16 agree exactly."""
    problem = random_problem(*shape, seed=5)
    results = {k: emulated(kernel(k), *problem, 0.19, 30.65, ckpt_every, block) for k in KS}
    for k in KS[1:]:
        assert all(torch.equal(a, b) for a, b in zip(results[k], results[1])), k


def test_outputs_equal_those_of_the_kernel_before_prefetching():
    """tests/data/kernel_outputs_2026-11-27.pt: outputs of the kernel as it was before the prefetch
    restructuring (emulated float32 build: IEEE float32 without contraction, glibc tanhf/expf)."""
    saved = torch.load(DATA / "kernel_outputs_2026-11-27.pt")
    for case in saved["cases"]:
        problem = random_problem(*case["shape"], seed=case["seed"])
        for k in KS:
            ours = emulated(kernel(k), *problem, case["dt"], case["alpha"], case["ckpt_every"], case["block"])
            for name, mine in zip(("y", "grad_x", "grad_w", "grad_c", "states"), ours):
                assert torch.equal(mine, case[name]), (case["shape"], k, name)


# ---- initial states, final-state gradients, variable lengths ----------------------------------------

# (shape, lengths, ckpt_every, block): lengths 0, 1, N and in between in one batch; 65 units per row
# make partial blocks and rows that straddle blocks
STATE_CASES = [((13, 5, 7), [13, 0, 1, 7, 12], 4, 32), ((13, 5, 7), [13, 0, 1, 7, 12], 1, 32),
               ((9, 3, 65), [9, 4, 0], 64, 128), ((20, 2, 33), [20, 20], 6, 64), ((1, 2, 3), [1, 0], 1, 32)]


def emulated_with_state(module, x, w, c, grad_y, initial, grad_final, lengths, dt, alpha, ckpt_every, block):
    """[y, y_n, z_n, dx, dw, dc, dy_0, dz_0] as state_outputs_and_grads orders them."""
    y, grad_x, grad_w, grad_c, states, grad_initial = emulated(module, x, w, c, grad_y, dt, alpha, ckpt_every,
                                                               block, initial, lengths, grad_final)
    return [y, states[-1, 0], states[-1, 1], grad_x, grad_w, grad_c, grad_initial[0], grad_initial[1]]


def reference_with_state(problem, lengths, dt, alpha, dtype):
    return state_outputs_and_grads(lambda x, w, c, **kw: reference_recurrence(x, w, c, dt, alpha, **kw),
                                   *problem, torch.tensor(lengths), dtype)


@pytest.mark.parametrize("prefetch", KS)
@pytest.mark.parametrize("shape,lengths,ckpt_every,block", STATE_CASES)
def test_double_build_with_states_and_lengths_matches_float64(prefetch, shape, lengths, ckpt_every, block):
    """Padding holds NaN in x and in dL/dy: nothing past a length may reach any output or gradient."""
    dt, alpha = exact(0.19), exact(30.65)
    x, w, c, grad_y, initial, grad_final = (t.double() for t in random_state_problem(*shape, seed=shape[2]))
    truth = reference_with_state((x, w, c, grad_y, initial, grad_final), lengths, dt, alpha, torch.float64)
    ours = emulated_with_state(kernel(prefetch, double=True), with_padding(x, lengths), w, c,
                               with_padding(grad_y, lengths), initial, grad_final, lengths, dt, alpha, ckpt_every, block)
    assert max(max_rel_errs(ours, truth)) <= 1e-12
    assert torch.all(ours[0][torch.arange(shape[0])[:, None] >= torch.tensor(lengths)] == 0)  # y = 0 past a length


@pytest.mark.parametrize("prefetch", [1, cuda_kernel.DEFAULT_PREFETCH])
@pytest.mark.parametrize("dt,alpha", PAPER_SETTINGS)
def test_float32_build_with_states_and_lengths_within_the_core_bounds(prefetch, dt, alpha):
    shape, lengths = (300, 4, 9), [300, 0, 1, 157]
    problem = random_state_problem(*shape, seed=31)
    truth = reference_with_state(problem, lengths, dt, alpha, torch.float64)
    float32_loop = reference_with_state(problem, lengths, dt, alpha, torch.float32)
    ours = emulated_with_state(kernel(prefetch), *problem, lengths, dt, alpha, 64, 32)
    for mine, theirs in zip(max_rel_errs(ours, truth), max_rel_errs(float32_loop, truth)):
        assert mine <= max(2e-5, 1.25 * theirs), (mine, theirs)


@pytest.mark.parametrize("shape,lengths,ckpt_every,block", STATE_CASES[::2])
def test_every_prefetch_depth_gives_the_same_bits_with_states_and_lengths(shape, lengths, ckpt_every, block):
    problem = random_state_problem(*shape, seed=8)
    results = {k: emulated_with_state(kernel(k), *problem, lengths, 0.19, 30.65, ckpt_every, block) for k in KS}
    for k in KS[1:]:
        assert all(torch.equal(a, b) for a, b in zip(results[k], results[1])), k


def test_null_pointers_equal_zero_states_and_full_lengths():
    """No initial state, no lengths, no final-state gradient: the same bits as zeros and N."""
    x, w, c, grad_y = random_problem(70, 3, 65, seed=9)
    zeros = torch.zeros(2, 3, 65)
    module = kernel(cuda_kernel.DEFAULT_PREFETCH)
    plain = emulated(module, x, w, c, grad_y, 0.19, 30.65, 16, 64)
    explicit = emulated(module, x, w, c, grad_y, 0.19, 30.65, 16, 64, zeros, [70, 70, 70], zeros)
    assert all(torch.equal(a, b) for a, b in zip(plain, explicit))


def test_a_broken_launch_contract_is_caught():
    module = kernel(cuda_kernel.DEFAULT_PREFETCH)
    x, w, c, _ = random_problem(5, 2, 3, seed=1)
    plan = cuda_kernel.forward_plan(x, w, c, None, None, 0.1, 1.0, 4, 32)
    with pytest.raises(TypeError, match="takes 13 arguments"):
        module.launch(plan.kernel, plan.grid, plan.block, plan.args[:-1])
    swapped = plan.args[:6] + (plan.args[7], plan.args[6]) + plan.args[8:]  # states and n_steps
    with pytest.raises(TypeError, match="states"):
        module.launch(plan.kernel, plan.grid, plan.block, swapped)
    with pytest.raises(TypeError, match="lengths"):  # a float tensor where int lengths belong
        module.launch(plan.kernel, plan.grid, plan.block, plan.args[:4] + (x[0, :, 0],) + plan.args[5:])
    with pytest.raises(TypeError, match="float32"):
        module.launch(plan.kernel, plan.grid, plan.block, (x.double(),) + plan.args[1:])


# ---- the emulator itself, on toy kernels ---------------------------------------------------------

BLOCK_SUM = r"""
extern "C" __global__ void block_sum(const float* x, float* out, int n) {
    __shared__ float partial[128];
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    partial[threadIdx.x] = i < n ? x[i] : 0.0f;
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride >>= 1) {
        if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
        __syncthreads();
    }
    if (threadIdx.x == 0) out[blockIdx.x] = partial[0];
}
"""

WARP_TOOLS = r"""
extern "C" __global__ void warp_tools(const float* x, float* block_sums, float* total, int* ballots,
                                      float* first_of_warp, float* butterfly, int n) {
    extern __shared__ float warp_partials[];
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    const unsigned lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    float v = i < n ? x[i] : 0.0f;
    const unsigned positive = __ballot_sync(0xffffffffu, v > 0.0f);
    if (lane == 0) ballots[blockIdx.x * (blockDim.x / 32) + warp] = (int)positive;
    first_of_warp[i] = __shfl_sync(0xffffffffu, v, 0);
    float b = v;
    for (int m = 16; m > 0; m /= 2) b += __shfl_xor_sync(0xffffffffu, b, m);
    butterfly[i] = b;
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
    if (lane == 0) warp_partials[warp] = v;
    __syncthreads();
    if (threadIdx.x == 0) {
        float s = 0.0f;
        for (int w = 0; w < (int)(blockDim.x / 32); ++w) s += warp_partials[w];
        block_sums[blockIdx.x] = s;
        atomicAdd(total, s);
    }
}
"""


def test_block_reduction_with_static_shared_memory():
    x = torch.arange(1000, dtype=torch.float32) % 17 - 8
    out = torch.empty(8)
    emulator.build(BLOCK_SUM).launch("block_sum", (8,), (128,), (x, out, np.int32(1000)))
    assert torch.equal(out, torch.nn.functional.pad(x, (0, 24)).view(8, 128).sum(1))


@pytest.mark.parametrize("which", [0, 1])
def test_a_deleted_syncthreads_is_detected(which):
    position = [i for i in range(len(BLOCK_SUM)) if BLOCK_SUM.startswith("__syncthreads();", i)][which]
    broken = BLOCK_SUM[:position] + BLOCK_SUM[position + len("__syncthreads();"):]
    x = torch.arange(1000, dtype=torch.float32) % 17 - 8
    out = torch.empty(8)
    emulator.build(broken).launch("block_sum", (8,), (128,), (x, out, np.int32(1000)))
    assert not torch.equal(out, torch.nn.functional.pad(x, (0, 24)).view(8, 128).sum(1))


def test_warp_collectives_dynamic_shared_memory_and_atomics():
    n, blocks, threads = 300, 3, 128
    x = torch.randn(n, generator=torch.Generator().manual_seed(0))
    block_sums, total = torch.empty(blocks), torch.zeros(1)
    ballots, first, butterfly = torch.empty(blocks * 4, dtype=torch.int32), torch.empty(384), torch.empty(384)
    emulator.build(WARP_TOOLS).launch("warp_tools", (blocks,), (threads,),
                                      (x, block_sums, total, ballots, first, butterfly, np.int32(n)),
                                      shared_bytes=4 * 4)
    padded = torch.nn.functional.pad(x, (0, 84))
    assert torch.allclose(block_sums, padded.view(blocks, threads).sum(1), atol=1e-5)
    assert torch.allclose(total, padded.sum(), atol=1e-4)
    warps = padded.view(-1, 32)
    bits = ((warps > 0).int() << torch.arange(32)).sum(1)
    assert torch.equal(ballots, bits.int())
    assert torch.equal(first, warps[:, :1].expand(-1, 32).reshape(-1))
    assert torch.allclose(butterfly, warps.sum(1, keepdim=True).expand(-1, 32).reshape(-1), atol=1e-5)


def test_an_out_of_bounds_read_fails_the_launch():
    reads_past = r"""
    extern "C" __global__ void reads_past(const float* x, float* out, int n) {
        const int i = blockIdx.x * blockDim.x + threadIdx.x;
        if (i <= n) out[i % n] = x[i];   // i == n reads one element past the end
    }"""
    x, out = emulator.fenced_empty(64, torch.float32), emulator.fenced_empty(64, torch.float32)
    with pytest.raises(RuntimeError, match="out-of-bounds memory access"):
        emulator.build(reads_past).launch("reads_past", (3,), (32,), (x, out, np.int32(64)))
    emulator.build(reads_past).launch("reads_past", (2,), (32,), (x, out, np.int32(64)))  # still usable


def test_barrier_misuse_fails_instead_of_hanging():
    deadlock = r"""
    extern "C" __global__ void deadlock(float* out) {
        if (threadIdx.x == 0) __syncthreads();
        else out[threadIdx.x] = __shfl_sync(0xffffffffu, 1.0f, 0);
    }"""
    with pytest.raises(RuntimeError, match="deadlock"):
        emulator.build(deadlock).launch("deadlock", (1,), (32,), (torch.empty(32),))
    exited = r"""
    extern "C" __global__ void exited(float* out) {
        if (threadIdx.x % 2) return;
        out[threadIdx.x] = __shfl_sync(0xffffffffu, 1.0f, 0);
    }"""
    with pytest.raises(RuntimeError, match="exited"):
        emulator.build(exited).launch("exited", (1,), (32,), (torch.empty(32),))
