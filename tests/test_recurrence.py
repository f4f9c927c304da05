"""The CPU path of ``recurrence`` against the autograd reference and float64, forward and all
gradients, on fresh random inputs; both CPU implementations (the compiled loops and the PyTorch
loop they fall back to) are held to the same bounds."""
import numpy as np
import pytest
import torch

from conftest import max_rel_errs, outputs_and_grads, random_problem
from unicornn import cpu_path, ops, recurrence, reference_recurrence

PAPER_SETTINGS = [(0.19, 30.65), (0.126, 13.0), (0.011, 9.0), (0.0343, 0.0)]


@pytest.fixture(params=cpu_path.IMPLEMENTATIONS)
def cpu_impl(request):
    """Run the test on the compiled CPU path (Numba, a dependency: it must load) and on the
    PyTorch loop it falls back to."""
    with cpu_path.cpu_implementation(request.param):
        yield request.param


def fast(dt, alpha, **kw):
    return lambda x, w, c: recurrence(x, w, c, dt, alpha, **kw)


def ref(dt, alpha):
    return lambda x, w, c: reference_recurrence(x, w, c, dt, alpha)


@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 3, 5), (7, 1, 1), (64, 1, 33), (50, 2, 31),
                                   (129, 3, 65), (784, 2, 37), (1000, 3, 17), (40, 9, 300)])
@pytest.mark.parametrize("dt,alpha", PAPER_SETTINGS)
def test_float32_matches_float64_reference(shape, dt, alpha, cpu_impl):
    problem = random_problem(*shape, seed=hash((shape, dt)) % 10_000)
    truth = outputs_and_grads(ref(dt, alpha), *problem, torch.float64)
    ours = outputs_and_grads(fast(dt, alpha), *problem, torch.float32)
    ref32 = outputs_and_grads(ref(dt, alpha), *problem, torch.float32)
    assert all(r.dtype == torch.float32 for r in ours)
    # float32 rounding alone gives about 1e-5 at N = 1000. With psMNIST's stiff alpha = 30.65 the
    # float32 autograd loop itself reaches 2.6e-5 at N = 1000 (measured), so the bound is 2e-5 or
    # 1.25x what float32 autograd achieves on the same draw, whichever is larger.
    for mine, theirs in zip(max_rel_errs(ours, truth), max_rel_errs(ref32, truth)):
        assert mine <= max(2e-5, 1.25 * theirs), (mine, theirs)


@pytest.mark.parametrize("ckpt_every", [None, 1, 2, 7, 64, 1000])
@pytest.mark.parametrize("n", [1, 5, 64, 130])
def test_float64_equals_reference_for_every_chunking(n, ckpt_every, cpu_impl):
    """In float64 the reconstruction is exact to rounding, whatever the checkpoint spacing."""
    problem = random_problem(n, 2, 9, seed=n)
    truth = outputs_and_grads(ref(0.19, 30.65), *problem, torch.float64)
    ours = outputs_and_grads(fast(0.19, 30.65, ckpt_every=ckpt_every), *problem, torch.float64)
    assert max(max_rel_errs(ours, truth)) <= 1e-12


def test_gradcheck_float64(cpu_impl):
    x, w, c, _ = random_problem(6, 2, 3, seed=1)
    inputs = tuple(t.double().requires_grad_() for t in (x, w, c))
    assert torch.autograd.gradcheck(lambda *a: recurrence(*a, 0.3, 2.0, ckpt_every=4), inputs)
    assert torch.autograd.gradcheck(lambda *a: recurrence(*a, 0.3, 0.0, ckpt_every=None), inputs)


@pytest.mark.parametrize("n,dt,alpha,bound_none,bound_default", [
    # Healthcare set-up. Measured: ~3e-6 for both schemes.
    (4000, 0.011, 9.0, 2e-5, 2e-5),
    # EigenWorms set-up, the loss on the last step as in training. Measured over draws and input
    # scales (0.3, 1.0): the float32 autograd loop ~2e-5; the 2021 scheme (reconstruct from t = N
    # only) 3e-5 to 6e-3, since the undamped oscillators carry every step's rounding backwards;
    # checkpoints every 64 steps 6e-6 to 7e-5. Bounds are about 2x the worst measured value.
    (17984, 0.0343, 0.0, 2e-2, 1.5e-4),
])
def test_long_sequences(n, dt, alpha, bound_none, bound_default, capsys, cpu_impl):
    problem = random_problem(n, 4, 16, seed=7, x_scale=0.3, last_step_loss=True)
    truth = outputs_and_grads(fast(dt, alpha, ckpt_every=1), *problem, torch.float64)
    errs_none = max_rel_errs(outputs_and_grads(fast(dt, alpha, ckpt_every=None), *problem,
                                               torch.float32), truth)
    errs_default = max_rel_errs(outputs_and_grads(fast(dt, alpha), *problem, torch.float32), truth)
    with capsys.disabled():
        print(f"\n{cpu_impl} N={n}: rel. errors [y, dx, dw, dc] vs float64: final state only "
              f"{['%.1e' % e for e in errs_none]}, every {ops.DEFAULT_CKPT_EVERY} steps "
              f"{['%.1e' % e for e in errs_default]}")
    assert max(errs_none) <= bound_none
    assert max(errs_default) <= bound_default


# EigenWorms' first layer (dt = 2.81e-5) at its full length: s ~ 1.4e-5 moves y by a few ulp per step,
# so plain float32 sums lose most of every increment. Measured against float64 (4 x 16 columns, the
# loss on the last step): y 1.0e-7 with the Kahan-compensated sums, 2.0e-6 without them (the float32
# autograd loop: 1.9e-6). The bound is 3x the compensated error, 7x below the uncompensated one.
EIGENWORMS_FIRST_LAYER_Y_BOUND = 3e-7


def test_eigenworms_first_layer_keeps_y_accurate(cpu_impl):
    dt = float(np.float32(2.81e-5))
    problem = random_problem(17984, 4, 16, seed=21, x_scale=0.3, last_step_loss=True)
    truth = outputs_and_grads(fast(dt, 0.0, ckpt_every=1), *problem, torch.float64)
    errors = max_rel_errs(outputs_and_grads(fast(dt, 0.0), *problem, torch.float32), truth)
    assert errors[0] <= EIGENWORMS_FIRST_LAYER_Y_BOUND and max(errors) <= 1.5e-4, errors


def test_non_contiguous_inputs(cpu_impl):
    x, w, c, gy = random_problem(40, 6, 10, seed=3)
    x_strided = x.transpose(0, 1).contiguous().transpose(0, 1)[:, ::2]  # (40, 3, 10), strided
    w_strided = torch.stack([w, w], 1)[:, 0]
    assert not x_strided.is_contiguous() and not w_strided.is_contiguous()
    truth = outputs_and_grads(ref(0.1, 1.0), x_strided, w_strided, c, gy[:, ::2], torch.float64)
    ours = outputs_and_grads(fast(0.1, 1.0), x_strided, w_strided, c, gy[:, ::2], torch.float32)
    assert max(max_rel_errs(ours, truth)) <= 2e-5


@pytest.mark.parametrize("dtype,bound", [(torch.bfloat16, 3e-2), (torch.float16, 5e-3)])
def test_low_precision_inputs_compute_in_float32(dtype, bound):
    x, w, c, _ = random_problem(200, 2, 8, seed=4)
    y = recurrence(x.to(dtype), w, c, 0.1, 1.0)
    assert y.dtype == dtype
    truth = reference_recurrence(x.to(dtype).double(), w.double(), c.double(), 0.1, 1.0)
    assert ((y.double() - truth).norm() / truth.norm()).item() <= bound


def test_autocast_bfloat16_model_layer():
    from unicornn import UnICORNN
    model = UnICORNN(3, 8, 2, dt=0.1, alpha=1.0, nlayers=2)
    x = torch.randn(30, 4, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    out.float().sum().backward()
    assert out.dtype == torch.bfloat16
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_torch_compile_traces_around_the_op():
    x, w, c, _ = random_problem(12, 2, 5, seed=6)
    compiled = torch.compile(lambda x, w, c: recurrence(x * 2.0, w, c, 0.2, 3.0).sum(), fullgraph=True)
    expected = recurrence(x * 2.0, w, c, 0.2, 3.0).sum()
    assert torch.allclose(compiled(x, w, c), expected)


def test_torch_compile_with_a_changing_float_dt():
    """A plain float that changes between calls reaches the op as a symbolic float under dynamo."""
    torch._dynamo.reset()
    x, w, c, _ = random_problem(12, 2, 5, seed=6)
    compiled = torch.compile(lambda x, w, c, dt, alpha: recurrence(x, w, c, dt, alpha), fullgraph=True)
    for dt, alpha in ((0.2, 3.0), (0.3, 3.0), (0.45, 1.5)):
        assert torch.allclose(compiled(x, w, c, dt, alpha), recurrence(x, w, c, dt, alpha), rtol=1e-5)


def test_numpy_and_0dim_tensor_hyperparameters():
    import numpy as np
    x, w, c, _ = random_problem(20, 2, 4, seed=8)
    expected = recurrence(x, w, c, 0.25, 2.0)
    for dt, alpha in ((np.float32(0.25), np.float64(2.0)), (torch.tensor(0.25), torch.tensor(2)),
                      (np.float64(0.25), 2)):
        assert torch.equal(recurrence(x, w, c, dt, alpha), expected)
        assert torch.equal(reference_recurrence(x, w, c, dt, alpha), reference_recurrence(x, w, c, 0.25, 2.0))


@pytest.mark.parametrize("shape", [(5, 0, 3), (0, 2, 3), (4, 2, 0)])
@pytest.mark.parametrize("fn", [recurrence, reference_recurrence], ids=["fast", "reference"])
def test_empty_inputs_give_empty_outputs_and_zero_gradients(shape, fn):
    """An empty batch is accepted as nn.LSTM accepts it; so are N = 0 and no units."""
    x = torch.zeros(shape, requires_grad=True)
    w, c = torch.rand(shape[2], requires_grad=True), torch.rand(shape[2], requires_grad=True)
    y = fn(x, w, c, 0.1, 1.0)
    assert y.shape == shape and y.dtype == x.dtype
    y.sum().backward()
    assert x.grad.shape == shape and torch.equal(w.grad, torch.zeros_like(w))
    assert torch.equal(c.grad, torch.zeros_like(c))


@pytest.mark.parametrize("args,match", [
    ((torch.zeros(5, 3), torch.zeros(3), torch.zeros(3), 0.1, 1.0), "seq_len, batch, hidden"),
    ((torch.zeros(5, 2, 3), torch.zeros(3), torch.zeros(3), torch.tensor([0.1, 0.2]), 1.0), "0-dim"),
    ((torch.zeros(5, 2, 3), torch.zeros(3), torch.zeros(3), torch.tensor(0.1, requires_grad=True), 1.0),
     "not differentiated"),
    ((torch.zeros(5, 2, 3), torch.zeros(3), torch.zeros(3), "0.1", 1.0), "real number"),
    ((torch.zeros(5, 2, 3), torch.zeros(3), torch.zeros(3), 0.1, float("inf")), "alpha must be"),
    ((torch.zeros(5, 2, 3, dtype=torch.int64), torch.zeros(3), torch.zeros(3), 0.1, 1.0), "floating"),
    ((torch.zeros(5, 2, 3), torch.zeros(4), torch.zeros(3), 0.1, 1.0), r"\(hidden,\) = \(3,\)"),
    ((torch.zeros(5, 2, 3), torch.zeros(3), torch.zeros(3, 1), 0.1, 1.0), "c must have shape"),
    ((torch.zeros(5, 2, 3), torch.zeros(3, device="meta"), torch.zeros(3), 0.1, 1.0), "one device"),
    ((torch.zeros(5, 2, 3), torch.zeros(3), torch.zeros(3), 0.0, 1.0), "dt must be"),
    ((torch.zeros(5, 2, 3), torch.zeros(3), torch.zeros(3), -0.1, 1.0), "dt must be"),
    ((torch.zeros(5, 2, 3), torch.zeros(3), torch.zeros(3), float("nan"), 1.0), "dt must be"),
    ((torch.zeros(5, 2, 3), torch.zeros(3), torch.zeros(3), float("inf"), 1.0), "dt must be"),
    ((torch.zeros(5, 2, 3), torch.zeros(3), torch.zeros(3), 0.1, -1.0), "alpha must be"),
    ((torch.zeros(5, 2, 3), torch.zeros(3), torch.zeros(3, dtype=torch.float64), 0.1, 1.0), "same dtype"),
])
def test_bad_inputs_raise_clear_errors(args, match):
    with pytest.raises(ValueError, match=match):
        recurrence(*args)


def test_bad_ckpt_every_and_device():
    x, w, c = torch.zeros(5, 2, 3), torch.zeros(3), torch.zeros(3)
    with pytest.raises(ValueError, match="ckpt_every"):
        recurrence(x, w, c, 0.1, 1.0, ckpt_every=0)
    with pytest.raises(ValueError, match="'cpu' or 'cuda'"):
        recurrence(*(t.to("meta") for t in (x, w, c)), 0.1, 1.0)


def test_missing_cupy_names_the_package(monkeypatch):
    import sys
    from unicornn import cuda_kernel
    monkeypatch.setitem(sys.modules, "cupy", None)
    with pytest.raises(ImportError, match="pip install cupy-cuda12x"):
        cuda_kernel._cupy()
