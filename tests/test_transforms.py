"""torch.func transforms, forward-mode AD, torch.compile and torch.library.opcheck on ``recurrence``:
each gives what it gives on the reference (plain PyTorch ops), or raises an error naming the limitation
(second derivatives), never a silent zero."""
import pytest
import torch
import torch.autograd.forward_ad as fwAD
from torch import func

from conftest import random_state_problem, rel_err, with_padding
from unicornn import ops, recurrence, reference_recurrence

LENGTHS = torch.tensor([9, 0, 4])


@pytest.fixture
def problem():
    """float64 x (9, 3, 5) with NaN past the lengths, w, c, y_0, z_0."""
    x, w, c, _, initial, _ = (t.double() for t in random_state_problem(9, 3, 5, seed=1))
    return with_padding(x, LENGTHS), w, c, initial[0], initial[1]


def outputs(fn):
    """(x, w, c, y_0, z_0) -> (y, y_n, z_n) with lengths, as a function of every differentiable input."""
    def run(x, w, c, y0, z0):
        y, (y_n, z_n) = fn(x, w, c, 0.19, 30.65, initial_state=(y0, z0), lengths=LENGTHS, return_state=True)
        return y, y_n, z_n
    return run


def loss(fn):
    def run(*inputs):
        y, y_n, z_n = outputs(fn)(*inputs)
        return y.square().sum() + y_n.sum() + 3.0 * z_n.sum()
    return run


def assert_close(ours, truth, bound=1e-12):
    ours, truth = torch.utils._pytree.tree_leaves(ours), torch.utils._pytree.tree_leaves(truth)
    assert len(ours) == len(truth)
    for a, b in zip(ours, truth):
        assert torch.isfinite(a).all() and rel_err(a, b) <= bound


def test_func_grad_and_jacrev(problem):
    argnums = (0, 1, 2, 3, 4)
    assert_close(func.grad(loss(recurrence), argnums)(*problem), func.grad(loss(reference_recurrence), argnums)(*problem))
    x, w, c, y0, z0 = problem
    jac = func.jacrev(lambda w, z0: outputs(recurrence)(x, w, c, y0, z0), argnums=(0, 1))(w, z0)
    truth = func.jacrev(lambda w, z0: outputs(reference_recurrence)(x, w, c, y0, z0), argnums=(0, 1))(w, z0)
    assert_close(jac, truth)


def test_forward_mode_jvp_jacfwd_and_dual_tensors(problem):
    tangents = tuple(with_padding(torch.randn_like(t), LENGTHS) if t.dim() == 3 else torch.randn_like(t)
                     for t in problem)
    ours = func.jvp(outputs(recurrence), problem, tangents)
    truth = func.jvp(outputs(reference_recurrence), problem, tangents)
    assert_close(ours, truth)
    assert all(t.abs().max() > 0 for t in ours[1])  # not the silent zeros of before
    x, w, c, y0, z0 = problem
    assert_close(func.jacfwd(lambda c: outputs(recurrence)(x, w, c, y0, z0))(c),
                 func.jacfwd(lambda c: outputs(reference_recurrence)(x, w, c, y0, z0))(c))
    results = []
    for fn in (recurrence, reference_recurrence):
        with fwAD.dual_level():
            dual = outputs(fn)(fwAD.make_dual(x, tangents[0]), w, fwAD.make_dual(c, tangents[2]), y0, z0)
            results.append([fwAD.unpack_dual(t).tangent for t in dual])
    assert_close(*results)


def test_second_derivatives_raise_an_error_that_names_the_limitation(problem):
    x, w, c, y0, z0 = problem
    with pytest.raises(RuntimeError, match="second derivatives .* not supported"):
        func.hessian(lambda w: loss(recurrence)(x, w, c, y0, z0))(w)
    w = w.clone().requires_grad_()
    (grad_w,) = torch.autograd.grad(loss(recurrence)(x, w, c, y0, z0), w, create_graph=True)
    with pytest.raises(RuntimeError, match="second derivatives .* not supported"):
        grad_w.sum().backward()


@pytest.mark.parametrize("batched", ["x", "weights", "x and weights", "lengths", "nested"])
def test_vmap_folds_extra_batch_dimensions(batched, problem):
    x, w, c, y0, z0 = problem
    g = torch.Generator().manual_seed(2)
    xs, ws = torch.randn((4,) + x.shape, generator=g, dtype=x.dtype), torch.rand(4, 5, generator=g, dtype=x.dtype)
    many_lengths = torch.tensor([[9, 0, 4], [1, 2, 3], [9, 9, 9], [0, 0, 0]])

    def run(fn, x, w, lengths=LENGTHS):
        y, (y_n, z_n) = fn(x, w, c, 0.19, 30.65, initial_state=(y0, z0), lengths=lengths, return_state=True)
        return y, y_n, z_n

    def each(fn, *per_copy):
        return [torch.stack(parts) for parts in zip(*(fn(*args) for args in zip(*per_copy)))]

    if batched == "x":
        ours, truth = func.vmap(lambda x: run(recurrence, x, w))(xs), each(lambda x: run(reference_recurrence, x, w), xs)
    elif batched == "weights":
        ours, truth = func.vmap(lambda w: run(recurrence, x, w))(ws), each(lambda w: run(reference_recurrence, x, w), ws)
    elif batched == "x and weights":
        ours = func.vmap(lambda x, w: run(recurrence, x, w))(xs, ws)
        truth = each(lambda x, w: run(reference_recurrence, x, w), xs, ws)
    elif batched == "lengths":  # other lengths than the padding was made for: no NaN in x
        x = x.nan_to_num()
        ours = func.vmap(lambda n: run(recurrence, x, w, n))(many_lengths)
        truth = each(lambda n: run(reference_recurrence, x, w, n), many_lengths)
    else:
        xss = xs.reshape(2, 2, *x.shape)
        ours = func.vmap(func.vmap(lambda x: run(recurrence, x, w)))(xss)
        truth = [t.reshape(2, 2, *t.shape[1:]) for t in each(lambda x: run(reference_recurrence, x, w), xs)]
    assert_close(ours, truth)


def test_vmap_of_grad_gives_per_sample_gradients(problem):
    x, w, c, y0, z0 = problem
    xs = torch.randn((4,) + x.shape, dtype=x.dtype, generator=torch.Generator().manual_seed(3))

    def sample_loss(fn):
        return lambda w, c, x: loss(fn)(x, w, c, y0, z0)
    ours = func.vmap(func.grad(sample_loss(recurrence), argnums=(0, 1)), in_dims=(None, None, 0))(w, c, xs)
    truth = func.vmap(func.grad(sample_loss(reference_recurrence), argnums=(0, 1)), in_dims=(None, None, 0))(w, c, xs)
    assert_close(ours, truth)


def layouts(x):
    """The same values contiguous, transposed (a batch-first tensor viewed as (N, B, H)) and expanded."""
    return {"contiguous": x.clone(), "transposed": x.transpose(0, 1).contiguous().transpose(0, 1),
            "expanded": x[:, :1].expand(x.shape)}


@pytest.mark.parametrize("layout", ["contiguous", "transposed", "expanded"])
@pytest.mark.parametrize("with_state", [False, True], ids=["plain", "state+lengths"])
def test_opcheck_on_both_ops(layout, with_state):
    """Schema, fake tensors (shapes and strides of the real outputs), autograd registration, AOT dispatch."""
    x, w, c, grad_y, initial, grad_final = random_state_problem(7, 3, 5, seed=4)
    x, grad_y = layouts(x)[layout], layouts(grad_y)[layout]
    lengths = torch.tensor([7, 2, 0]) if with_state else None
    initial, grad_final = (initial, grad_final) if with_state else (None, None)
    constants = (0.2, 3.0, 4, False, 16)
    torch.library.opcheck(ops._forward, (x.detach().requires_grad_(), w.requires_grad_(), c.requires_grad_(),
                                         initial, lengths) + constants)
    _, states, _ = ops._forward(x, w.detach(), c.detach(), initial, lengths, *constants)
    torch.library.opcheck(ops._backward, (x, w.detach(), c.detach(), lengths, states, grad_y, grad_final) + constants)


def test_torch_compile_with_a_batch_first_view_states_and_lengths():
    x, w, c, grad_y, initial, _ = random_state_problem(12, 3, 5, seed=5)
    batch_first = x.transpose(0, 1).contiguous()
    lengths = torch.tensor([12, 3, 0])

    def run(x_bf, w, c, y0, z0):
        y, (y_n, z_n) = recurrence(x_bf.transpose(0, 1), w, c, 0.2, 3.0, initial_state=(y0, z0), lengths=lengths,
                                   return_state=True)
        return (y * grad_y).sum() + y_n.sum() - z_n.sum()
    torch._dynamo.reset()
    compiled = torch.compile(run, fullgraph=True)
    inputs = [t.clone().requires_grad_() for t in (batch_first, w, c, *initial)]
    eager_inputs = [t.clone().requires_grad_() for t in (batch_first, w, c, *initial)]
    compiled(*inputs).backward()
    run(*eager_inputs).backward()
    for a, b in zip(inputs, eager_inputs):
        assert torch.allclose(a.grad, b.grad, rtol=1e-5, atol=1e-6)
