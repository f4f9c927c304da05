"""The healthcare model: UnICORNN with 2 inputs (the two signals) and one real output."""
from unicornn import UnICORNN


def build_model(args):
    return UnICORNN(ninp=2, nhid=args.nhid, nout=1, dt=args.dt, alpha=args.alpha,
                    nlayers=args.nlayers, dropout=args.dropout)
