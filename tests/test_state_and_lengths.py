"""Initial states, final states and variable lengths on the CPU path (both implementations) and in the
reference: against float64 autograd, forward and every gradient, including the loss on the final
state; streaming in chunks with the carried state; one ``step`` at a time; bit-identity with the
code before these arguments existed (tests/data/cpu_outputs_2026-11-30.pt; the compiled loops, which
now fuse multiply-adds, to rounding, and bit for bit with cpu_compiled_fma_outputs_2026-11-30.pt)."""
import pathlib

import pytest
import torch

from conftest import (max_rel_errs, outputs_and_grads, random_problem, random_state_problem, state_outputs_and_grads,
                      with_padding)
from unicornn import cpu_path, recurrence, reference_recurrence, step, torch_loop

DATA = pathlib.Path(__file__).with_name("data")
# lengths 0, 1, N and in between, in one batch
CASES = [((13, 5, 7), [13, 0, 1, 7, 12]), ((70, 3, 20), [70, 64, 65]), ((1, 2, 3), [1, 0]), ((9, 1, 4), [9])]


@pytest.fixture(params=cpu_path.IMPLEMENTATIONS)
def cpu_impl(request):
    with cpu_path.cpu_implementation(request.param):
        yield request.param


def fast(dt, alpha, **options):
    return lambda x, w, c, **kw: recurrence(x, w, c, dt, alpha, **options, **kw)


def ref(dt, alpha):
    return lambda x, w, c, **kw: reference_recurrence(x, w, c, dt, alpha, **kw)


@pytest.mark.parametrize("ckpt_every", [None, 1, 4, 64])
@pytest.mark.parametrize("shape,lengths", CASES)
def test_float64_equals_the_reference_with_nan_padding(shape, lengths, ckpt_every, cpu_impl):
    x, w, c, grad_y, initial, grad_final = (t.double() for t in random_state_problem(*shape, seed=sum(lengths)))
    lengths = torch.tensor(lengths)
    truth = state_outputs_and_grads(ref(0.19, 30.65), x, w, c, grad_y, initial, grad_final, lengths, torch.float64)
    ours = state_outputs_and_grads(fast(0.19, 30.65, ckpt_every=ckpt_every), with_padding(x, lengths), w, c,
                                   with_padding(grad_y, lengths), initial, grad_final, lengths, torch.float64)
    assert max(max_rel_errs(ours, truth)) <= 1e-12
    assert all(torch.isfinite(t).all() for t in ours)


@pytest.mark.parametrize("dt,alpha", [(0.19, 30.65), (0.011, 9.0), (0.0343, 0.0)])
def test_float32_within_the_core_bounds(dt, alpha, cpu_impl):
    problem = random_state_problem(500, 4, 33, seed=3)
    lengths = torch.tensor([500, 0, 1, 257])
    truth = state_outputs_and_grads(ref(dt, alpha), *problem, lengths, torch.float64)
    ref32 = state_outputs_and_grads(ref(dt, alpha), *problem, lengths, torch.float32)
    ours = state_outputs_and_grads(fast(dt, alpha), *problem, lengths, torch.float32)
    for mine, theirs in zip(max_rel_errs(ours, truth), max_rel_errs(ref32, truth)):
        assert mine <= max(2e-5, 1.25 * theirs), (mine, theirs)


def test_gradcheck_float64(cpu_impl):
    x, w, c, _, initial, _ = (t.double() for t in random_state_problem(6, 3, 2, seed=2))
    inputs = tuple(t.clone().requires_grad_() for t in (x, w, c, *initial))

    def run(x, w, c, y0, z0):
        y, (y_n, z_n) = recurrence(x, w, c, 0.3, 2.0, ckpt_every=4, initial_state=(y0, z0),
                                   lengths=torch.tensor([6, 0, 3]), return_state=True)
        return y, y_n, z_n
    assert torch.autograd.gradcheck(run, inputs)


def test_the_reference_with_lengths_is_the_reference_on_each_truncated_sequence():
    """Independently of the masks: each sequence run alone for its own number of steps."""
    x, w, c, _, initial, _ = (t.double() for t in random_state_problem(11, 4, 5, seed=4))
    lengths = [11, 0, 1, 6]
    y, (y_n, z_n) = reference_recurrence(x, w, c, 0.2, 3.0, initial_state=tuple(initial), lengths=torch.tensor(lengths),
                                         return_state=True)
    for b, length in enumerate(lengths):
        alone, (yb, zb) = reference_recurrence(x[:length, b:b + 1], w, c, 0.2, 3.0, return_state=True,
                                               initial_state=(initial[0, b:b + 1], initial[1, b:b + 1]))
        assert torch.equal(y[:length, b:b + 1], alone) and torch.all(y[length:, b] == 0)
        assert torch.equal(y_n[b:b + 1], yb) and torch.equal(z_n[b:b + 1], zb)
    assert torch.equal(y_n[1], initial[0, 1]) and torch.equal(z_n[1], initial[1, 1])  # length 0


def test_without_the_new_arguments_outputs_are_bit_identical_to_before(cpu_impl):
    """Outputs and gradients saved by commit 47a00b3, before initial states and lengths existed: the
    PyTorch loop's bit for bit. The compiled loops fuse multiply-adds since (as the CUDA kernel):
    bit for bit as saved then (cpu_compiled_fma_outputs_2026-11-30.pt), and within rounding of 47a00b3's."""
    before = [case for case in torch.load(DATA / "cpu_outputs_2026-11-30.pt")["cases"]
              if case["implementation"] == cpu_impl]
    fused = torch.load(DATA / "cpu_compiled_fma_outputs_2026-11-30.pt")["cases"]
    assert len(before) == 8 and len(fused) == 8
    for case, fused_case in zip(before, fused):
        problem = random_problem(*case["shape"], seed=case["seed"])
        ours = outputs_and_grads(fast(case["dt"], case["alpha"], ckpt_every=case["ckpt_every"]), *problem,
                                 getattr(torch, case["dtype"]))
        rounding = 2e-6 if case["dtype"] == "float32" else 1e-14
        for name, mine in zip(("y", "grad_x", "grad_w", "grad_c"), ours):
            where = (case["shape"], case["dtype"], name)
            if cpu_impl == "torch_loop":
                assert torch.equal(mine, case[name]), where
            else:
                assert fused_case["shape"] == case["shape"] and fused_case["dtype"] == case["dtype"]
                assert torch.equal(mine, fused_case[name]), where
                assert ((mine - case[name]).norm() / case[name].norm()).item() <= rounding, where


def test_full_lengths_and_zero_states_equal_no_arguments(cpu_impl):
    x, w, c, grad_y = random_problem(50, 3, 16, seed=5)
    plain = outputs_and_grads(fast(0.19, 30.65), x, w, c, grad_y, torch.float32)
    full = outputs_and_grads(fast(0.19, 30.65, lengths=torch.full((3,), 50),
                                  initial_state=(torch.zeros(3, 16), torch.zeros(3, 16))), x, w, c, grad_y, torch.float32)
    assert all(torch.equal(a, b) for a, b in zip(plain, full))


@pytest.mark.parametrize("ckpt_every", [7, 64])
def test_streaming_in_chunks_equals_the_whole_sequence(ckpt_every, cpu_impl):
    x, w, c, _ = random_problem(300, 3, 16, seed=6)
    whole, (y_n, z_n) = recurrence(x, w, c, 0.126, 13.0, return_state=True, ckpt_every=ckpt_every)
    state, pieces = None, []
    for chunk in x.split([1, 99, 64, 136]):
        y, state = recurrence(chunk, w, c, 0.126, 13.0, initial_state=state, return_state=True, ckpt_every=ckpt_every)
        pieces.append(y)
    # each call starts its Kahan compensation afresh: equal to float32 rounding, not bit for bit
    assert torch.allclose(torch.cat(pieces), whole, rtol=0, atol=1e-5)
    assert torch.allclose(state[0], y_n, rtol=0, atol=1e-5) and torch.allclose(state[1], z_n, rtol=0, atol=1e-5)


def test_truncated_bptt_gradients_equal_the_reference_from_the_carried_state(cpu_impl):
    """Train-style use: the state carried between chunks, detached; each chunk's gradients are those
    of the reference started from that state, for weights and for the initial state."""
    x, w, c, _ = random_problem(120, 2, 8, seed=7)
    state = None
    for chunk in x.split(40):
        ws, cs = w.clone().requires_grad_(), c.clone().requires_grad_()
        y0, z0 = (torch.zeros(2, 8) if state is None else state[i].detach() for i in (0, 1))
        y0.requires_grad_(), z0.requires_grad_()
        y, state = recurrence(chunk, ws, cs, 0.19, 30.65, initial_state=(y0, z0), return_state=True)
        (y[-1].square().sum() + state[1].sum()).backward()
        wr, cr, y0r, z0r = (t.detach().double().requires_grad_() for t in (w, c, y0, z0))
        yr, stater = reference_recurrence(chunk.double(), wr, cr, 0.19, 30.65, initial_state=(y0r, z0r),
                                          return_state=True)
        (yr[-1].square().sum() + stater[1].sum()).backward()
        assert max(max_rel_errs([ws.grad, cs.grad, y0.grad, z0.grad], [wr.grad, cr.grad, y0r.grad, z0r.grad])) <= 1e-5


def test_step_equals_the_sequence_op(cpu_impl):
    x, w, c, _ = random_problem(40, 3, 16, seed=8)
    whole = recurrence(x, w, c, 0.19, 30.65)
    state, outputs = None, []
    for x_t in x:
        y_t, new_state = step(x_t, w, c, 0.19, 30.65, state)
        one, one_state = recurrence(x_t[None], w, c, 0.19, 30.65, initial_state=state, return_state=True)
        assert torch.equal(y_t, one[0]) and all(torch.equal(a, b) for a, b in zip(new_state, one_state))
        assert torch.equal(y_t, new_state[0])
        state = new_state
        outputs.append(y_t)
    assert torch.allclose(torch.stack(outputs), whole, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match=r"x_t must be a \(batch, hidden\) tensor"):
        step(x, w, c, 0.19, 30.65)


def test_the_forced_implementation_is_the_one_that_runs(monkeypatch):
    """cpu_implementation selects what runs: a dispatch slip would otherwise test one path twice."""
    calls = []
    for module in (torch_loop, cpu_path.compiled_module()):
        for name in ("forward", "backward"):
            original = getattr(module, name)
            monkeypatch.setattr(module, name, lambda *a, _o=original, _m=module, _n=name: calls.append((_m, _n)) or _o(*a))
    x, w, c, _ = random_problem(5, 2, 3, seed=9)
    for name, module in (("torch_loop", torch_loop), ("compiled", cpu_path.compiled_module()), (None, cpu_path.compiled_module())):
        calls.clear()
        with cpu_path.cpu_implementation(name):
            assert cpu_path.implementation() is module
            recurrence(x.requires_grad_(), w, c, 0.1, 1.0).sum().backward()
        assert calls == [(module, "forward"), (module, "backward")], name
    with pytest.raises(ValueError, match="one of"):
        with cpu_path.cpu_implementation("vectorised"):
            pass


@pytest.mark.parametrize("kwargs,match", [
    (dict(lengths=torch.tensor([3, 2])), r"lengths must have shape \(batch,\) = \(3,\)"),
    (dict(lengths=torch.tensor([3.0, 2.0, 1.0])), "lengths must hold integers"),
    (dict(lengths=torch.tensor([True, False, True])), "lengths must hold integers"),
    (dict(lengths=torch.tensor([6, 2, 1])), r"lengths must lie in \[0, seq_len\] = \[0, 5\], got values from 1 to 6"),
    (dict(lengths=[-1, 2, 1]), r"lengths must lie in \[0, seq_len\]"),
    (dict(lengths="abc"), "lengths must"),
    (dict(initial_state=torch.zeros(3, 4)), r"initial_state must be a pair \(y_0, z_0\)"),
    (dict(initial_state=(torch.zeros(3, 4),)), r"initial_state must be a pair"),
    (dict(initial_state=(torch.zeros(3, 4), torch.zeros(4, 3))), r"z_0 must have shape \(batch, hidden\) = \(3, 4\)"),
    (dict(initial_state=(torch.zeros(3, 4, dtype=torch.int64), torch.zeros(3, 4))), "y_0 must be a floating point"),
    (dict(initial_state=(torch.zeros(3, 4, device="meta"), torch.zeros(3, 4))), "y_0 is on meta but x is on cpu"),
])
@pytest.mark.parametrize("fn", [recurrence, reference_recurrence], ids=["fast", "reference"])
def test_bad_states_and_lengths_raise_clear_errors(kwargs, match, fn):
    with pytest.raises(ValueError, match=match):
        fn(torch.zeros(5, 3, 4), torch.zeros(4), torch.zeros(4), 0.1, 1.0, **kwargs)


def test_empty_inputs_with_states():
    """N = 0: no step, the final state is the initial state and its gradient passes straight through."""
    y0, z0 = torch.randn(2, 3, requires_grad=True), torch.randn(2, 3, requires_grad=True)
    w, c = torch.rand(3, requires_grad=True), torch.rand(3, requires_grad=True)
    for fn in (recurrence, reference_recurrence):
        y, (y_n, z_n) = fn(torch.zeros(0, 2, 3), w, c, 0.1, 1.0, initial_state=(y0, z0), return_state=True)
        assert y.shape == (0, 2, 3) and torch.equal(y_n, y0) and torch.equal(z_n, z0)
        (y_n.sum() + 2 * z_n.sum()).backward()
        assert torch.equal(y0.grad, torch.ones(2, 3)) and torch.equal(z0.grad, 2 * torch.ones(2, 3))
        y0.grad = z0.grad = None
    y, (y_n, z_n) = recurrence(torch.zeros(4, 0, 3), w, c, 0.1, 1.0, return_state=True, lengths=torch.zeros(0, dtype=torch.long))
    assert y.shape == (4, 0, 3) and y_n.shape == z_n.shape == (0, 3)
