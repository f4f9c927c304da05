"""The EigenWorms model: UnICORNN with 6 inputs, 5 classes, per-layer dt, no dropout (paper)."""
from unicornn import UnICORNN


def build_model(args):
    return UnICORNN(ninp=6, nhid=args.nhid, nout=5, dt=args.dt, alpha=args.alpha,
                    nlayers=args.nlayers, dropout=args.dropout)
