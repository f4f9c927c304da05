"""The psMNIST model: UnICORNN with 1 input feature (one pixel per step) and 10 classes."""
from unicornn import UnICORNN


def build_model(args):
    return UnICORNN(ninp=1, nhid=args.nhid, nout=10, dt=args.dt, alpha=args.alpha,
                    nlayers=args.nlayers, dropout=args.dropout)
