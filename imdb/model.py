"""The IMDB model: GloVe-initialised embedding with embedding dropout (whole words), UnICORNN
layers with dropout over time, and a classifier to one logit read from the last row (as the 2021
code, which read the last row of the right-padded batch)."""
from torch import nn
from torch.nn import functional as F

from unicornn import UnICORNNStack
from unicornn.model import init_classifier

from .data import PAD


def embedding_dropout(weight, p):
    """Drop whole words: zero rows of the embedding matrix with probability p, rescale the rest."""
    mask = weight.new_empty((weight.shape[0], 1)).bernoulli_(1.0 - p) / (1.0 - p)
    return weight * mask


class SentimentModel(nn.Module):
    def __init__(self, embeddings, nhid, dt, alpha, nlayers, dropout, emb_dropout):
        super().__init__()
        self.embedding = nn.Embedding.from_pretrained(embeddings, freeze=False, padding_idx=PAD)
        self.emb_dropout = emb_dropout
        self.stack = UnICORNNStack(embeddings.shape[1], nhid, dt, alpha, nlayers, dropout)
        self.classifier = init_classifier(nn.Linear(nhid, 1))

    def forward(self, tokens):
        """tokens (seq_len, batch) -> logits (batch,)."""
        weight = self.embedding.weight
        if self.training and self.emb_dropout > 0:
            weight = embedding_dropout(weight, self.emb_dropout)
        x = F.embedding(tokens, weight, padding_idx=PAD)
        return self.classifier(self.stack(x)[-1]).squeeze(-1)


def build_model(args, embeddings):
    return SentimentModel(embeddings, args.nhid, args.dt, args.alpha, args.nlayers, args.dropout,
                          args.emb_dropout)
