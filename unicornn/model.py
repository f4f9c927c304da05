"""Layers and the stacked UnICORNN model of the paper (Sec. 3 and the 2021 code's ``UnICORNN``).

    input (N, batch, ninp)
      -> L x [ dense layer over time -> UnICORNN recurrence -> dropout over time ]
      -> linear classifier on the last layer's output at the last step -> (batch, nout)
"""
from collections.abc import Sequence

import torch
from torch import nn

from .ops import recurrence


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

    dt and alpha are buffers (float64, in the state_dict), so a saved model describes itself and
    ``load_state_dict`` restores them; the recurrence reads Python copies, so a forward pass on the
    GPU never waits for them."""

    def __init__(self, nhid, dt, alpha):
        super().__init__()
        self.weight_hh = nn.Parameter(torch.empty(nhid))
        self.c = nn.Parameter(torch.empty(nhid))
        self.register_buffer("dt", torch.tensor(float(dt), dtype=torch.float64))
        self.register_buffer("alpha", torch.tensor(float(alpha), dtype=torch.float64))
        self._constants = (float(dt), float(alpha))
        self.register_load_state_dict_post_hook(_reread_constants)
        self.reset_parameters()

    def reset_parameters(self):
        nn.init.uniform_(self.weight_hh, 0.0, 1.0)
        nn.init.uniform_(self.c, -0.1, 0.1)

    def _apply(self, fn, recurse=True):
        """Casts (``.half()``, ``.to(torch.bfloat16)``) move dt and alpha but keep them float64:
        they are constants of the recurrence, not weights, and must survive a save and load."""
        super()._apply(fn, recurse)
        for name, value in zip(("dt", "alpha"), self._constants):
            self._buffers[name] = torch.tensor(value, dtype=torch.float64, device=self._buffers[name].device)
        return self

    def forward(self, x):
        dt, alpha = self._constants
        return recurrence(x, self.weight_hh, self.c, dt, alpha)

    def extra_repr(self):
        return f"nhid={self.c.numel()}, dt={self._constants[0]}, alpha={self._constants[1]}"


def _reread_constants(module, _incompatible_keys):
    module._constants = (module.dt.item(), module.alpha.item())


def per_layer(value, nlayers, name):
    """A float (or a one-element list), or one value per layer -> a list of nlayers floats."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) == 1:
            return [float(value[0])] * nlayers
        if len(value) != nlayers:
            raise ValueError(f"{name} has {len(value)} values but there are {nlayers} layers")
        return [float(v) for v in value]
    return [float(value)] * nlayers


class UnICORNNStack(nn.Module):
    """L x [dense over time -> recurrence -> dropout over time]: (N, B, ninp) -> (N, B, nhid)."""

    def __init__(self, ninp, nhid, dt, alpha, nlayers, dropout=0.1):
        super().__init__()
        if nlayers < 1:
            raise ValueError(f"nlayers must be >= 1, got {nlayers}")
        self.dense = nn.ModuleList(nn.Linear(ninp if i == 0 else nhid, nhid) for i in range(nlayers))
        self.recurrences = nn.ModuleList(
            UnICORNNRecurrence(nhid, dt_i, alpha) for dt_i in per_layer(dt, nlayers, "dt"))
        self.dropout = DropoutOverTime(dropout)
        for layer in self.dense:
            nn.init.kaiming_uniform_(layer.weight, a=8, mode="fan_in")
            nn.init.zeros_(layer.bias)

    def forward(self, x):
        if x.dim() != 3 or x.shape[2] != self.dense[0].in_features:
            raise ValueError(f"expected input of shape (seq_len, batch, {self.dense[0].in_features}),"
                             f" got {tuple(x.shape)}")
        for dense, rnn in zip(self.dense, self.recurrences):
            x = self.dropout(rnn(dense(x)))
        return x


def init_classifier(linear):
    """As the 2021 code: kaiming_normal weight, zero bias."""
    nn.init.kaiming_normal_(linear.weight)
    nn.init.zeros_(linear.bias)
    return linear


class UnICORNN(nn.Module):
    """The stacked model: (N, batch, ninp) -> logits (batch, nout) from the last step."""

    def __init__(self, ninp, nhid, nout, dt, alpha, nlayers, dropout=0.1):
        super().__init__()
        self.stack = UnICORNNStack(ninp, nhid, dt, alpha, nlayers, dropout)
        self.classifier = init_classifier(nn.Linear(nhid, nout))

    def forward(self, x):
        if x.dim() == 3 and x.shape[0] == 0:
            raise ValueError("the classifier reads the last step: seq_len must be >= 1, got 0")
        return self.classifier(self.stack(x)[-1])
