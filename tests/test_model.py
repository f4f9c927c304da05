"""The stacked model: shapes, per-layer dt, dropout over time, eval determinism, init, training."""
import math

import pytest
import torch

from unicornn import DropoutOverTime, UnICORNN


def test_output_shape_and_per_layer_dt():
    model = UnICORNN(3, 16, 5, dt=[0.1, 0.2, 0.3], alpha=1.0, nlayers=3)
    assert model(torch.randn(20, 4, 3)).shape == (4, 5)
    assert [r.dt for r in model.stack.recurrences] == [0.1, 0.2, 0.3]
    assert UnICORNN(3, 16, 5, dt=0.05, alpha=1.0, nlayers=2).stack.recurrences[1].dt == 0.05
    assert UnICORNN(1, 4, 2, dt=0.1, alpha=0.0, nlayers=1)(torch.randn(1, 1, 1)).shape == (1, 2)


def test_bad_configuration_and_input():
    with pytest.raises(ValueError, match="2 values but there are 3 layers"):
        UnICORNN(3, 16, 5, dt=[0.1, 0.2], alpha=1.0, nlayers=3)
    with pytest.raises(ValueError, match=r"\(seq_len, batch, 3\)"):
        UnICORNN(3, 16, 5, dt=0.1, alpha=1.0, nlayers=1)(torch.randn(20, 4, 2))
    with pytest.raises(ValueError, match="dropout"):
        DropoutOverTime(1.0)


def test_dropout_mask_is_constant_over_time_and_off_in_eval():
    torch.manual_seed(0)
    drop = DropoutOverTime(0.5)
    out = drop(torch.ones(50, 8, 64))
    assert torch.equal(out, out[:1].expand_as(out))
    assert set(out.unique().tolist()) == {0.0, 2.0}
    assert 0.35 < (out[0] == 0).float().mean().item() < 0.65
    drop.eval()
    x = torch.randn(5, 2, 3)
    assert drop(x) is x


def test_eval_mode_is_deterministic_and_train_mode_is_not():
    model = UnICORNN(2, 32, 3, dt=0.1, alpha=1.0, nlayers=2, dropout=0.3)
    x = torch.randn(30, 4, 2)
    assert not torch.equal(model(x), model(x))
    model.eval()
    assert torch.equal(model(x), model(x))


def test_initialisation_follows_the_2021_code():
    torch.manual_seed(0)
    nhid = 4096
    model = UnICORNN(64, nhid, 512, dt=0.1, alpha=1.0, nlayers=2)
    for rnn in model.stack.recurrences:
        w, c = rnn.weight_hh, rnn.c
        # U(a, b): within the bounds, reaching both ends, mean (a + b) / 2 and std (b - a) / sqrt(12)
        assert 0 <= w.min() < 0.01 and 0.99 < w.max() <= 1 and abs(w.mean().item() - 0.5) < 0.02
        assert abs(w.std().item() / (1 / math.sqrt(12)) - 1) < 0.05
        assert -0.1 <= c.min() < -0.099 and 0.099 < c.max() <= 0.1 and abs(c.mean().item()) < 0.005
        assert abs(c.std().item() / (0.2 / math.sqrt(12)) - 1) < 0.05
    for dense in model.stack.dense:  # kaiming_uniform(a=8, fan_in): U(-b, b), b = gain*sqrt(3/fan_in)
        bound = math.sqrt(2.0 / (1 + 8 ** 2)) * math.sqrt(3.0 / dense.in_features)
        assert dense.weight.abs().max() <= bound and dense.weight.abs().max() > 0.99 * bound
        assert torch.count_nonzero(dense.bias) == 0
    cls = model.classifier  # kaiming_normal(fan_in, relu gain): N(0, 2/fan_in)
    assert abs(cls.weight.std().item() / math.sqrt(2.0 / nhid) - 1) < 0.02
    assert torch.count_nonzero(cls.bias) == 0


def test_the_classifier_reads_the_last_step():
    model = UnICORNN(2, 16, 3, dt=0.1, alpha=1.0, nlayers=2).eval()
    x = torch.randn(30, 4, 2)
    logits = model(x)
    assert torch.equal(logits, model.classifier(model.stack(x)[-1]))
    changed = x.clone()
    changed[-1] += 1.0  # only the last input: every output before it stays the same
    assert torch.equal(model.stack(changed)[:-1], model.stack(x)[:-1])
    assert not torch.allclose(model(changed), logits)
    model.train()  # with dropout: the same draws and numbers as the classifier on the stack's last step
    torch.manual_seed(3)
    expected = model.classifier(model.stack(x)[-1])
    torch.manual_seed(3)
    assert torch.equal(model(x), expected)


def test_one_adam_step_lowers_the_loss_on_a_fixed_batch():
    torch.manual_seed(1)
    model = UnICORNN(1, 32, 10, dt=0.19, alpha=30.65, nlayers=2, dropout=0.0)
    x, labels = torch.rand(100, 16, 1), torch.randint(0, 10, (16,))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    before = loss_fn(model(x), labels)
    opt.zero_grad()
    before.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    opt.step()
    with torch.no_grad():
        assert loss_fn(model(x), labels) < before


def test_model_runs_in_float64():
    model = UnICORNN(2, 8, 3, dt=0.1, alpha=1.0, nlayers=2).double()
    assert model(torch.randn(10, 2, 2, dtype=torch.float64)).dtype == torch.float64


def test_dt_and_alpha_travel_in_the_state_dict():
    """A saved model describes itself: loading restores per-layer dt and alpha, casts keep them exact."""
    source = UnICORNN(2, 8, 3, dt=[0.19, 2.81e-5], alpha=30.65, nlayers=2)
    state = source.state_dict()
    assert state["stack.recurrences.1.dt"].item() == 2.81e-5 and state["stack.recurrences.0.alpha"] == 30.65
    target = UnICORNN(2, 8, 3, dt=0.5, alpha=1.0, nlayers=2)
    target.load_state_dict(state)
    assert [r.dt for r in target.stack.recurrences] == [0.19, 2.81e-5]
    x = torch.randn(30, 4, 2)
    source.eval(), target.eval()
    assert torch.equal(target(x), source(x))
    target.to(torch.bfloat16)
    assert target.state_dict()["stack.recurrences.1.dt"].dtype == torch.float64
    assert target.state_dict()["stack.recurrences.1.dt"].item() == 2.81e-5


def test_empty_batch_and_zero_length():
    model = UnICORNN(2, 8, 3, dt=0.1, alpha=1.0, nlayers=2)
    assert model(torch.randn(10, 0, 2)).shape == (0, 3)
    with pytest.raises(ValueError, match="seq_len must be >= 1"):
        model(torch.randn(0, 4, 2))
