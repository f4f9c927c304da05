"""UnICORNNLayer, the nn.LSTM-shaped module: shapes and conventions, carried state, PackedSequence and
padded batches with lengths, the backward direction within each sequence's own length, and the
paper's model built on it keeping its weights, its state_dict keys and its outputs."""
import pathlib

import pytest
import torch
from torch.nn.utils import rnn as rnn_utils

from unicornn import UnICORNN, UnICORNNLayer, UnICORNNRecurrence, recurrence

DATA = pathlib.Path(__file__).with_name("data")


def layer64(**kw):
    torch.manual_seed(0)
    options = dict(num_layers=2, dt=[0.1, 0.2], alpha=3.0, dropout=0.0) | kw
    return UnICORNNLayer(3, 6, **options).double().eval()


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
def test_shapes_follow_nn_lstm(bidirectional, batch_first):
    layer = UnICORNNLayer(3, 6, 2, dt=0.1, alpha=1.0, batch_first=batch_first, bidirectional=bidirectional)
    directions = 2 if bidirectional else 1
    x = torch.randn(4, 10, 3) if batch_first else torch.randn(10, 4, 3)
    output, (y_n, z_n) = layer(x)
    assert output.shape == ((4, 10) if batch_first else (10, 4)) + (directions * 6,)
    assert y_n.shape == z_n.shape == (2 * directions, 4, 6)
    unbatched, (y_1, _) = layer(x[0] if batch_first else x[:, 0])  # (seq_len, input_size), as nn.LSTM
    assert unbatched.shape == (10, directions * 6) and y_1.shape == (2 * directions, 6)
    assert torch.allclose(unbatched, output[0] if batch_first else output[:, 0], atol=1e-6)


def test_unidirectional_layers_are_dense_then_recurrence():
    layer = layer64()
    x = torch.randn(12, 2, 3, dtype=torch.float64)
    output, (y_n, z_n) = layer(x)
    hidden = x
    for i in range(2):
        rnn = layer.recurrences[i]
        hidden, (y_i, z_i) = recurrence(layer.dense[i](hidden), rnn.weight_hh, rnn.c, rnn.dt, rnn.alpha, return_state=True)
        assert torch.equal(y_n[i], y_i) and torch.equal(z_n[i], z_i)
    assert torch.equal(output, hidden)


def run_each_alone(layer, x, lengths):
    """Each sequence on its own, unpadded: the ground truth for padded and packed batches."""
    outputs, finals = [], []
    for b, length in enumerate(lengths):
        out, (y_n, z_n) = layer(x[:length, b:b + 1])
        outputs.append(out[:, 0])
        finals.append((y_n[:, 0], z_n[:, 0]))
    return outputs, finals


@pytest.mark.parametrize("bidirectional", [False, True])
def test_packed_and_padded_batches_equal_each_sequence_alone(bidirectional):
    """The backward direction reverses each sequence within its own length, not the padding."""
    layer = layer64(bidirectional=bidirectional)
    lengths = [5, 9, 1, 7]
    x = torch.randn(9, 4, 3, dtype=torch.float64)
    alone, finals = run_each_alone(layer, x, lengths)
    packed = rnn_utils.pack_padded_sequence(x, torch.tensor(lengths), enforce_sorted=False)
    out_packed, (y_n, z_n) = layer(packed)
    assert isinstance(out_packed, rnn_utils.PackedSequence)
    assert torch.equal(out_packed.batch_sizes, packed.batch_sizes)
    assert torch.equal(out_packed.sorted_indices, packed.sorted_indices)
    padded, _ = rnn_utils.pad_packed_sequence(out_packed)
    out_lengths, (y_l, z_l) = layer(x, lengths=torch.tensor(lengths))
    for b, length in enumerate(lengths):
        for output in (padded, out_lengths):
            assert torch.allclose(output[:length, b], alone[b], rtol=0, atol=1e-12)
            assert torch.all(output[length:, b] == 0)
        for final_y, final_z in ((y_n, z_n), (y_l, z_l)):
            assert torch.allclose(final_y[:, b], finals[b][0], rtol=0, atol=1e-12)
            assert torch.allclose(final_z[:, b], finals[b][1], rtol=0, atol=1e-12)


def test_the_backward_direction_reads_the_sequence_reversed():
    layer = layer64(num_layers=1, dt=0.1, bidirectional=True)
    x = torch.randn(8, 2, 3, dtype=torch.float64)
    output, (y_n, _) = layer(x)
    rnn = layer.recurrences[1]
    backward, (y_b, _) = recurrence(layer.dense[1](x.flip(0)), rnn.weight_hh, rnn.c, rnn.dt, rnn.alpha, return_state=True)
    assert torch.equal(output[..., 6:], backward.flip(0)) and torch.equal(y_n[1], y_b)


def test_carried_state_streams_a_sequence_in_chunks():
    layer = UnICORNNLayer(3, 16, 2, dt=0.126, alpha=13.0).eval()
    x = torch.randn(200, 2, 3)
    whole, whole_state = layer(x)
    state, pieces = None, []
    for chunk in x.split([50, 1, 149]):
        out, state = layer(chunk, state)
        pieces.append(out)
    assert torch.allclose(torch.cat(pieces), whole, rtol=0, atol=1e-5)
    assert all(torch.allclose(a, b, rtol=0, atol=1e-5) for a, b in zip(state, whole_state))


def test_gradients_reach_the_input_and_the_initial_state():
    layer = layer64(bidirectional=True)
    lengths = torch.tensor([6, 2, 0])
    x = torch.randn(6, 3, 3, dtype=torch.float64, requires_grad=True)
    state = tuple(torch.randn(4, 3, 6, dtype=torch.float64, requires_grad=True) for _ in range(2))

    def run(x, y0, z0):
        output, (y_n, z_n) = layer(x, (y0, z0), lengths=lengths)
        return output, y_n, z_n
    assert torch.autograd.gradcheck(run, (x, *state), fast_mode=True)


def test_dropout_acts_between_layers_only():
    torch.manual_seed(1)
    layer = UnICORNNLayer(3, 64, 2, dt=0.1, alpha=1.0, dropout=0.5).train()
    x = torch.randn(5, 8, 3)
    output, _ = layer(x)
    assert (output == 0).float().mean() < 0.05  # no mask on the last layer's output
    first, _ = UnICORNNLayer(3, 64, 1, dt=0.1, alpha=1.0, dropout=0.5).train()(x)
    assert (first == 0).float().mean() < 0.05
    torch.manual_seed(2)
    a, _ = layer(x)
    torch.manual_seed(3)
    b, _ = layer(x)
    assert not torch.equal(a, b)  # the mask between the two layers is drawn each call
    layer.eval()
    assert torch.equal(layer(x)[0], layer(x)[0])


@pytest.mark.parametrize("call,match", [
    (lambda layer: layer(torch.randn(5, 2, 4)), r"expected input of shape \(seq_len, batch, 3\)"),
    (lambda layer: layer(torch.randn(5, 2, 3), (torch.zeros(2, 6), torch.zeros(2, 6))), r"state must be a pair"),
    (lambda layer: layer(torch.randn(5, 2, 3), (torch.zeros(1, 2, 6),) * 2), r"\(2, 2, 6\)"),
    (lambda layer: layer(rnn_utils.pack_sequence([torch.randn(3, 3)]), lengths=torch.tensor([3])), "PackedSequence"),
    (lambda layer: layer(torch.randn(5, 2, 3), lengths=torch.tensor([6, 1])), r"lengths must lie in \[0, seq_len\]"),
])
def test_bad_input_raises_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call(UnICORNNLayer(3, 6, 2, dt=0.1, alpha=1.0))


def test_a_checkpoint_saved_before_the_layer_existed_loads_with_the_same_outputs():
    """tests/data/model_checkpoint_2026-11-30.pt: the paper's model as commit 47a00b3 saved it, and
    the weights that torch.manual_seed(0) gave it then. Its logits came from 47a00b3's compiled loops;
    these fuse multiply-adds since, so today's logits agree to float32 rounding (measured 9.7e-8
    relative), not bit for bit."""
    saved = torch.load(DATA / "model_checkpoint_2026-11-30.pt")
    model = UnICORNN(**saved["config"]).eval()
    model.load_state_dict(saved["state_dict"])
    assert list(model.state_dict()) == list(saved["state_dict"])
    logits = model(saved["x"])
    assert ((logits - saved["logits"]).norm() / saved["logits"].norm()).item() <= 1e-6
    torch.manual_seed(0)
    fresh = UnICORNN(**saved["config"])
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), saved["state_dict"].values()))


def test_dt_and_alpha_have_one_source_of_truth():
    layer = UnICORNNRecurrence(4, dt=0.1, alpha=2.0)
    x = torch.randn(20, 2, 4)
    before = layer(x)
    layer.dt = 0.5
    assert not torch.equal(layer(x), before)
    assert torch.equal(layer(x), recurrence(x, layer.weight_hh, layer.c, 0.5, 2.0))
    assert layer.state_dict()["dt"].item() == 0.5 and layer.state_dict()["dt"].dtype == torch.float64
    with pytest.raises(AttributeError):
        layer.dt.fill_(0.3)  # a float: there is no second copy to fall out of step
    with pytest.raises(ValueError, match="dt must be a finite number > 0"):
        layer.dt = float("inf")
    with pytest.raises(ValueError, match="alpha must be a finite number >= 0"):
        layer.alpha = -1.0
    other = UnICORNNRecurrence(4, dt=0.9, alpha=0.0)
    other.load_state_dict(layer.state_dict())
    assert (other.dt, other.alpha) == (0.5, 2.0)
    state = layer.state_dict()
    del state["alpha"]
    with pytest.raises(RuntimeError, match='Missing key.*"alpha"'):
        other.load_state_dict(state)
