"""The building blocks users put in their own models: ``UnICORNNRecurrence`` (one layer of
oscillators), ``DropoutOverTime`` and ``UnICORNNLayer``, a stack of them with nn.LSTM's conventions
(carried state, PackedSequence, bidirectional, batch_first)."""
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.utils import rnn as rnn_utils

from .ops import recurrence
from .validation import check_hyperparameter_range, scalar_hyperparameter


class DropoutOverTime(nn.Module):
    """Dropout with one mask per (batch, unit), the same at every time step (inverted: kept units
    are scaled by 1/(1-p)); the identity in eval mode. Input (N, batch, hidden)."""

    def __init__(self, p=0.1):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        mask = torch.empty(x.shape[1:], device=x.device, dtype=x.dtype).bernoulli_(1.0 - self.p)
        return x * (mask / (1.0 - self.p))

    def extra_repr(self):
        return f"p={self.p}"


class UnICORNNRecurrence(nn.Module):
    """One layer of independent oscillators: trainable w (``weight_hh``) and c, fixed dt and alpha.
    Initialised as the 2021 code: w ~ U(0, 1), c ~ U(-0.1, 0.1).

    dt and alpha are plain floats (``layer.dt = 0.05`` changes the computation), the one place they
    live. The state_dict still holds them, as float64 tensors under the keys ``dt`` and ``alpha``,
    so a saved model describes itself and ``load_state_dict`` restores them."""

    CONSTANTS = ("dt", "alpha")

    def __init__(self, nhid, dt, alpha):
        super().__init__()
        self.weight_hh = nn.Parameter(torch.empty(nhid))
        self.c = nn.Parameter(torch.empty(nhid))
        self.dt, self.alpha = dt, alpha
        self.reset_parameters()

    def reset_parameters(self):
        nn.init.uniform_(self.weight_hh, 0.0, 1.0)
        nn.init.uniform_(self.c, -0.1, 0.1)

    def __setattr__(self, name, value):
        if name in self.CONSTANTS:  # checked where set, as the recurrence checks them
            value = check_hyperparameter_range(scalar_hyperparameter(value, name), name)
        super().__setattr__(name, value)

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        for name in self.CONSTANTS:
            destination[prefix + name] = torch.tensor(getattr(self, name), dtype=torch.float64)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)
        for name in self.CONSTANTS:
            key = prefix + name
            if key in unexpected_keys:
                unexpected_keys.remove(key)
            if key in state_dict:
                setattr(self, name, state_dict[key].item())
            elif strict:
                missing_keys.append(key)

    def forward(self, x, initial_state=None, lengths=None, return_state=False):
        """``unicornn.recurrence`` with this layer's w, c, dt and alpha: x (N, batch, nhid)."""
        return recurrence(x, self.weight_hh, self.c, self.dt, self.alpha, initial_state=initial_state,
                          lengths=lengths, return_state=return_state)

    def extra_repr(self):
        return f"nhid={self.c.numel()}, dt={self.dt}, alpha={self.alpha}"


def per_layer(value, nlayers, name):
    """A float (or a one-element list), or one value per layer -> a list of nlayers floats."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) == 1:
            return [float(value[0])] * nlayers
        if len(value) != nlayers:
            raise ValueError(f"{name} has {len(value)} values but there are {nlayers} layers")
        return [float(v) for v in value]
    return [float(value)] * nlayers


def reverse_within_lengths(x, lengths):
    """x (N, B, ...) with each sequence b's first lengths[b] steps reversed and its padding left in
    place (lengths None: the whole sequence reversed). Its own inverse."""
    if lengths is None:
        return x.flip(0)
    steps = torch.arange(x.shape[0], device=x.device)[:, None]
    lengths = lengths.to(x.device)[None, :]
    index = torch.where(steps < lengths, lengths - 1 - steps, steps)  # (N, B)
    return x.gather(0, index.reshape(index.shape + (1,) * (x.dim() - 2)).expand_as(x))


class UnICORNNLayer(nn.Module):
    """UnICORNN layers with nn.LSTM's conventions.

    Each layer and direction is [dense layer over time (input -> hidden_size) -> recurrence], as in
    the paper; dropout over time (one mask per sequence and unit, ``DropoutOverTime``) acts on each
    layer's output but the last, as nn.LSTM's dropout. dt and alpha: a number or one per layer.

    forward(input, state=None, lengths=None) -> (output, (y_n, z_n)):
      input (seq_len, batch, input_size), (batch, seq_len, input_size) with batch_first, or a
      PackedSequence (output is then one too); state (y_0, z_0) and the returned (y_n, z_n) are each
      (num_layers * num_directions, batch, hidden_size), layer-major as nn.LSTM's h_n;
      output (seq_len, batch, num_directions * hidden_size). Sequences of different lengths: a
      PackedSequence, or padded input with ``lengths`` (batch,); the backward direction runs each
      sequence from its own last step, not from the padding, and padded outputs are 0.
    """

    def __init__(self, input_size, hidden_size, num_layers=1, *, dt, alpha, dropout=0.0, batch_first=False,
                 bidirectional=False):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.batch_first, self.num_directions = batch_first, 2 if bidirectional else 1
        directions = self.num_directions
        # created in the 2021 code's order (every dense layer, then every recurrence, then the dense
        # init), so a seed gives the paper's model the weights it always had
        self.dense = nn.ModuleList(nn.Linear(input_size if i < directions else directions * hidden_size,
                                             hidden_size) for i in range(num_layers * directions))
        self.recurrences = nn.ModuleList(UnICORNNRecurrence(hidden_size, dt_l, alpha_l)
                                         for dt_l, alpha_l in zip(per_layer(dt, num_layers, "dt"),
                                                                  per_layer(alpha, num_layers, "alpha"))
                                         for _ in range(directions))
        self.dropout = DropoutOverTime(dropout)
        for layer in self.dense:  # as the 2021 code
            nn.init.kaiming_uniform_(layer.weight, a=8, mode="fan_in")
            nn.init.zeros_(layer.bias)

    def _check_state(self, state, batch):
        if state is None:
            return None
        expected = (self.num_layers * self.num_directions, batch, self.hidden_size)
        if not isinstance(state, (tuple, list)) or len(state) != 2 or \
                any(not isinstance(t, torch.Tensor) or tuple(t.shape) != expected for t in state):
            shapes = [tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
                      for t in (state if isinstance(state, (tuple, list)) else [state])]
            raise ValueError(f"state must be a pair (y_0, z_0), each of shape (num_layers * num_directions, "
                             f"batch, hidden_size) = {expected}, got {shapes}")
        return state

    def forward(self, input, state=None, lengths=None):
        packed = isinstance(input, rnn_utils.PackedSequence)
        if packed:
            if lengths is not None:
                raise ValueError("a PackedSequence carries its lengths: pass lengths only with padded input")
            x, lengths = rnn_utils.pad_packed_sequence(input)
        else:
            x = input.transpose(0, 1) if self.batch_first and input.dim() == 3 else input
        unbatched = x.dim() == 2  # (seq_len, input_size), as nn.LSTM accepts
        if unbatched:
            x = x.unsqueeze(1)
            state = None if state is None else tuple(t.unsqueeze(1) for t in state)
        if x.dim() != 3 or x.shape[2] != self.input_size:
            raise ValueError(f"expected input of shape (seq_len, batch, {self.input_size})"
                             f"{' with batch_first=False' if self.batch_first else ''}, got {tuple(x.shape)}")
        state = self._check_state(state, x.shape[1])
        final_y, final_z = [], []
        output = x
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(self.num_directions):
                i = layer * self.num_directions + direction
                inputs = output if direction == 0 else reverse_within_lengths(output, lengths)
                y, (y_n, z_n) = self.recurrences[i](self.dense[i](inputs), return_state=True, lengths=lengths,
                                                    initial_state=None if state is None else (state[0][i], state[1][i]))
                outputs.append(y if direction == 0 else reverse_within_lengths(y, lengths))
                final_y.append(y_n)
                final_z.append(z_n)
            output = torch.cat(outputs, -1) if self.num_directions > 1 else outputs[0]
            if layer < self.num_layers - 1:
                output = self.dropout(output)
        final = (torch.stack(final_y), torch.stack(final_z))
        if packed:
            output = rnn_utils.pack_padded_sequence(output, lengths, enforce_sorted=False)
            output = rnn_utils.PackedSequence(output.data, input.batch_sizes, input.sorted_indices,
                                              input.unsorted_indices)
        elif unbatched:
            output, final = output.squeeze(1), tuple(t.squeeze(1) for t in final)
        elif self.batch_first:
            output = output.transpose(0, 1)
        return output, final

    def extra_repr(self):
        return (f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
                f"bidirectional={self.num_directions == 2}, batch_first={self.batch_first}")
