"""Train UnICORNN on permuted sequential MNIST with the paper's hyperparameters (paper: 98.4%).

    python psMNIST/train.py                       # paper set-up, downloads MNIST with torchvision
    python psMNIST/train.py --data-dir ../shared/data/mnist --epochs 3
"""
import pathlib
import sys

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import torch

from psMNIST import data
from psMNIST.model import build_model
from unicornn import training
from unicornn.paths import default_data_dir

EXPERIMENT = "psMNIST"
METRIC = training.Metric("accuracy", higher_is_better=True, paper=98.4, fmt=".2f", unit="%")


def build_parser():
    parser = training.experiment_parser(__doc__)
    training.add_model_args(parser, nhid=256, nlayers=3, dt=0.19, alpha=30.65, dropout=0.1,
                            lr=0.00251, batch=32)
    parser.add_argument("--test-batch", type=int, default=1000, help="evaluation batch (%(default)s)")
    parser.add_argument("--reduce-point", "--reduce_point", dest="reduce_point", type=int, default=650,
                        help="divide lr by 10 after this epoch; default epochs = 4 x this (paper: 650)")
    parser.add_argument("--data-dir", default=str(default_data_dir("mnist")),
                        help="torchvision MNIST root, or a folder with the four idx files (.gz or not)")
    parser.add_argument("--cache-dir", default=str(default_data_dir("mnist")),
                        help="where idx files from a plain folder are unzipped once (%(default)s)")
    parser.add_argument("--no-download", dest="download", action="store_false",
                        help="never download; fail with instructions if the data is missing")
    parser.add_argument("--valid-size", type=int, default=3000, help="valid split (paper: 3000)")
    training.add_training_args(parser, epochs=None, experiment=EXPERIMENT)
    return parser


def main(argv=None):
    args = training.parse_args(build_parser(), argv, EXPERIMENT)
    if args.epochs is None:
        args.epochs = 4 * args.reduce_point
    device = training.pick_device(args.device)
    permutation = data.paper_permutation()
    splits = data.load_splits(args.data_dir, args.download, args.cache_dir, args.valid_size)
    training.seed_everything(args.seed)
    batches = data.make_batches(splits, permutation, device, args.batch, args.test_batch, args.seed)
    model = build_model(args).to(device)
    return training.fit(
        args, model, batches["train"], torch.nn.CrossEntropyLoss(),
        lambda split: training.evaluate_accuracy(model, batches[split]), METRIC,
        lr_milestones=[args.reduce_point])


if __name__ == "__main__":
    main()
