"""The noise-padded CIFAR-10 model: UnICORNN with 96 inputs (one image row per step) and 10 classes."""
from unicornn import UnICORNN


def build_model(args):
    return UnICORNN(ninp=96, nhid=args.nhid, nout=10, dt=args.dt, alpha=args.alpha,
                    nlayers=args.nlayers, dropout=args.dropout)
