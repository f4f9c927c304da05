"""The CUDA kernel against the reference on a real GPU, for every prefetch depth (run by
benchmarks/gpu_check.sh on a GPU machine; skipped without CUDA and CuPy)."""
import pytest
import torch

from conftest import max_rel_errs, outputs_and_grads, random_problem
from unicornn import UnICORNN, cpu_path, cuda_kernel, recurrence, reference_recurrence

KS = cuda_kernel.PREFETCH_DEPTHS

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.fixture(autouse=True)
def _needs_cupy():
    pytest.importorskip("cupy", reason="the CUDA kernel needs CuPy")


def kernel(dt, alpha, **kw):
    return lambda x, w, c: recurrence(x, w, c, dt, alpha, **kw)


def reference(dt, alpha):
    return lambda x, w, c: reference_recurrence(x, w, c, dt, alpha)


@pytest.mark.parametrize("prefetch", [1, 16])
@pytest.mark.parametrize("shape", [(1, 1, 1), (7, 1, 33), (100, 3, 31), (784, 32, 256),
                                   (1000, 30, 128)])
@pytest.mark.parametrize("dt,alpha", [(0.19, 30.65), (0.126, 13.0), (0.0343, 0.0)])
def test_kernel_matches_float64_reference(shape, dt, alpha, prefetch):
    problem = random_problem(*shape, seed=11, device="cuda")
    truth = outputs_and_grads(reference(dt, alpha), *problem, torch.float64)
    ref32 = outputs_and_grads(reference(dt, alpha), *problem, torch.float32)
    ours = outputs_and_grads(kernel(dt, alpha, prefetch=prefetch), *problem, torch.float32)
    for mine, theirs in zip(max_rel_errs(ours, truth), max_rel_errs(ref32, truth)):
        assert mine <= max(2e-5, 1.25 * theirs), (mine, theirs)


@pytest.mark.parametrize("shape,ckpt_every", [((130, 3, 65), 64), ((333, 5, 70), 7), ((40, 2, 20), None)])
def test_every_prefetch_depth_gives_the_same_bits(shape, ckpt_every):
    """As in the emulated tests: prefetching moves loads, never arithmetic."""
    problem = random_problem(*shape, seed=4, device="cuda")
    results = {k: outputs_and_grads(kernel(0.19, 30.65, prefetch=k, ckpt_every=ckpt_every), *problem,
                                    torch.float32) for k in KS}
    for k in KS[1:]:
        assert all(torch.equal(a, b) for a, b in zip(results[k], results[1])), k


def test_kernel_attributes_are_reported():
    for k in KS:
        attributes = cuda_kernel.function_attributes("cuda", k)
        assert set(attributes) == {"unicornn_forward", "unicornn_backward"}
        assert all(a["num_regs"] > 0 and a["local_size_bytes"] >= 0 for a in attributes.values())


def test_kernel_long_sequence_error_is_reported(capsys):
    problem = random_problem(17984, 8, 32, seed=12, device="cuda", x_scale=0.3, last_step_loss=True)
    truth = outputs_and_grads(kernel(0.0343, 0.0), *[t.cpu() for t in problem], torch.float64)
    errs = {}
    for name, ckpt in (("final state only", None), ("default checkpoints", 64)):
        errs[name] = max_rel_errs(outputs_and_grads(kernel(0.0343, 0.0, ckpt_every=ckpt), *problem,
                                                    torch.float32), truth)
    with capsys.disabled():
        for name, e in errs.items():
            print(f"\nGPU N=17984 {name}: rel. errors [y, dx, dw, dc] {['%.1e' % v for v in e]}")
    assert max(errs["default checkpoints"]) <= 1.5e-4


def test_kernel_agrees_with_cpu_path_in_float32():
    x, w, c, gy = random_problem(300, 5, 70, seed=13)
    y_cpu, st_cpu = cpu_path.forward(x, w, c, None, None, 0.1, 2.0, 64)
    grads_cpu = cpu_path.backward(x, w, c, None, st_cpu, gy, None, 0.1, 2.0, 64)
    y_gpu, st_gpu = cuda_kernel.forward(x.cuda(), w.cuda(), c.cuda(), None, None, 0.1, 2.0, 64)
    grads_gpu = cuda_kernel.backward(x.cuda(), w.cuda(), c.cuda(), None, st_gpu, gy.cuda(), None, 0.1, 2.0, 64)
    assert max(max_rel_errs([y_gpu, st_gpu, *grads_gpu], [y_cpu, st_cpu, *grads_cpu])) <= 1e-5


def test_non_contiguous_inputs():
    x, w, c, gy = random_problem(60, 8, 40, seed=14, device="cuda")
    x_strided, gy_strided = x[:, ::2], gy[:, ::2]
    w_strided = torch.stack([w, w], 1)[:, 1]
    assert not x_strided.is_contiguous() and not w_strided.is_contiguous()
    truth = outputs_and_grads(reference(0.1, 1.0), x_strided, w_strided, c, gy_strided, torch.float64)
    ours = outputs_and_grads(kernel(0.1, 1.0), x_strided, w_strided, c, gy_strided, torch.float32)
    assert max(max_rel_errs(ours, truth)) <= 2e-5


def test_every_output_element_is_written():
    """Poison the caching allocator with NaN blocks of the outputs' sizes, then run."""
    x, w, c, gy = random_problem(257, 3, 65, seed=15, device="cuda")
    for _ in range(3):
        poison = [torch.full_like(x, float("nan")) for _ in range(4)]
        poison += [torch.full((8, 2, 3, 65), float("nan"), device="cuda") for _ in range(4)]
        del poison
        ours = outputs_and_grads(kernel(0.1, 1.0), x, w, c, gy, torch.float32)
        assert all(torch.isfinite(t).all() for t in ours)
    truth = outputs_and_grads(reference(0.1, 1.0), x, w, c, gy, torch.float64)
    assert max(max_rel_errs(ours, truth)) <= 2e-5


def test_runs_on_a_side_stream_and_in_a_cuda_graph():
    x, w, c, _ = random_problem(100, 4, 32, seed=16, device="cuda")
    expected = recurrence(x, w, c, 0.1, 1.0)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        on_side = recurrence(x, w, c, 0.1, 1.0)
    torch.cuda.current_stream().wait_stream(side)
    assert torch.equal(on_side, expected)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = recurrence(x, w, c, 0.1, 1.0)
    x.copy_(x * 0.5)
    graph.replay()
    assert torch.equal(captured, recurrence(x, w, c, 0.1, 1.0))


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_one_compiled_kernel_per_device():
    for index in (0, 1):
        x, w, c, _ = random_problem(20, 2, 8, seed=17, device=f"cuda:{index}")
        assert recurrence(x, w, c, 0.1, 1.0).device.index == index
    assert {key[0] for key in cuda_kernel._functions} >= {0, 1}


def test_fast_math_is_opt_in_and_close():
    x, w, c, _ = random_problem(784, 8, 64, seed=18, device="cuda")
    exact = recurrence(x, w, c, 0.19, 30.65)
    approx = recurrence(x, w, c, 0.19, 30.65, fast_math=True)
    assert not torch.equal(exact, approx)
    assert ((exact - approx).norm() / exact.norm()).item() < 1e-2


def test_bfloat16_autocast_model_on_gpu():
    model = UnICORNN(3, 64, 5, dt=0.1, alpha=1.0, nlayers=2).cuda()
    x = torch.randn(200, 8, 3, device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model(x)
    out.float().sum().backward()
    assert out.dtype == torch.bfloat16
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_float64_on_gpu_is_refused_with_advice():
    x, w, c, _ = random_problem(5, 2, 3, seed=19, device="cuda")
    with pytest.raises(ValueError, match="reference_recurrence"):
        recurrence(x.double(), w.double(), c.double(), 0.1, 1.0)


@pytest.mark.parametrize("prefetch", [1, 16])
def test_states_and_lengths_match_float64(prefetch):
    """Initial states, a loss on the final state and lengths 0, 1, N and between, NaN in the padding."""
    from conftest import random_state_problem, state_outputs_and_grads, with_padding
    lengths = torch.tensor([333, 0, 1, 200, 64])
    x, w, c, gy, initial, grad_final = random_state_problem(333, 5, 70, seed=20)
    truth = state_outputs_and_grads(lambda *a, **kw: reference_recurrence(*a, 0.19, 30.65, **kw),
                                    x, w, c, gy, initial, grad_final, lengths, torch.float64)
    ref32 = state_outputs_and_grads(lambda *a, **kw: reference_recurrence(*a, 0.19, 30.65, **kw),
                                    x, w, c, gy, initial, grad_final, lengths, torch.float32)
    cuda = [t.cuda() for t in (with_padding(x, lengths), w, c, with_padding(gy, lengths), initial, grad_final)]
    ours = state_outputs_and_grads(lambda *a, **kw: recurrence(*a, 0.19, 30.65, prefetch=prefetch, **kw),
                                   *cuda, lengths, torch.float32)
    for mine, theirs in zip(max_rel_errs(ours, truth), max_rel_errs(ref32, truth)):
        assert mine <= max(2e-5, 1.25 * theirs), (mine, theirs)


def test_every_prefetch_depth_gives_the_same_bits_with_states_and_lengths():
    from conftest import random_state_problem, state_outputs_and_grads
    problem = [t.cuda() for t in random_state_problem(130, 3, 65, seed=21)]
    lengths = torch.tensor([130, 7, 0])
    results = {k: state_outputs_and_grads(lambda *a, k=k, **kw: recurrence(*a, 0.19, 30.65, prefetch=k, **kw),
                                          *problem, lengths, torch.float32) for k in KS}
    for k in KS[1:]:
        assert all(torch.equal(a, b) for a, b in zip(results[k], results[1])), k


def test_lengths_on_the_gpu_in_a_cuda_graph():
    """Lengths already on the device: nothing to copy or check while the graph is captured."""
    x, w, c, _ = random_problem(100, 3, 32, seed=22, device="cuda")
    lengths = torch.tensor([100, 50, 0], device="cuda")
    expected = recurrence(x, w, c, 0.1, 1.0, lengths=lengths)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = recurrence(x, w, c, 0.1, 1.0, lengths=lengths)
    graph.replay()
    assert torch.equal(captured, expected)
