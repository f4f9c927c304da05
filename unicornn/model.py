"""Layers and the stacked UnICORNN model of the paper (Sec. 3 and the 2021 code's ``UnICORNN``).

    input (N, batch, ninp)
      -> L x [ dense layer over time -> UnICORNN recurrence -> dropout over time ]
      -> linear classifier on the last layer's output at the last step -> (batch, nout)
"""
from torch import nn

from .layer import UnICORNNLayer


class UnICORNNStack(UnICORNNLayer):
    """The paper's stack, L x [dense over time -> recurrence -> dropout over time]: (N, B, ninp) ->
    (N, B, nhid). A ``UnICORNNLayer`` that also drops out after the last layer, as the 2021 code."""

    def __init__(self, ninp, nhid, dt, alpha, nlayers, dropout=0.1):
        super().__init__(ninp, nhid, nlayers, dt=dt, alpha=alpha, dropout=dropout)

    def forward(self, x):
        output, _ = super().forward(x)
        return self.dropout(output)

    def last_step(self, x):
        """``forward(x)[-1]`` (batch, nhid): the same numbers and random draws (the dropout mask is
        one per sequence and unit), without the dropout's pass over every step."""
        output, _ = super().forward(x)
        return self.dropout(output[-1:])[0]


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
        return self.classifier(self.stack.last_step(x))
