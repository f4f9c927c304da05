"""Train UnICORNN on permuted sequential MNIST with the paper's hyperparameters.

    python psMNIST/train.py                       # paper set-up, downloads MNIST with torchvision
    python psMNIST/train.py --data-dir /path/to/mnist --epochs 3     # a folder of the 4 idx files
"""
import pathlib
import sys

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import torch

from psMNIST import data
from psMNIST.model import build_model
from repro import cli, training
from repro.experiment import Experiment, Task
from repro.metrics import Metric, evaluate_accuracy
from repro.paths import default_data_dir
from repro.seeding import seed_everything


def build_parser():
    parser = cli.experiment_parser(__doc__)
    cli.add_model_args(parser, nhid=256, nlayers=3, dt=0.19, alpha=30.65, dropout=0.1,
                       lr=0.00251, batch=32)
    parser.add_argument("--test-batch", type=cli.positive_int, default=1000,
                        help="evaluation batch (on the CPU at most --batch: faster there)")
    cli.add_lr_drop_arg(parser, default=650, aliases=("--reduce-point", "--reduce_point"))
    parser.add_argument("--valid-size", type=cli.positive_int, default=3000, help="valid split (paper)")
    cli.add_data_args(parser, data_dir=default_data_dir("mnist"),
                      what="torchvision MNIST root, or a folder with the four idx files (.gz or not)")
    parser.add_argument("--cache-dir", default=str(default_data_dir("mnist")),
                        help="where idx files from a plain folder are unzipped once")
    cli.add_training_args(parser, epochs=None,
                          epochs_help="training epochs (default: 4 x the lr drop epoch = 2600, the paper's)")
    return parser


def derive_defaults(args):
    """The paper trains 4 x lr-drop-epoch epochs unless --epochs says otherwise."""
    if args.epochs is None:
        args.epochs = 4 * args.lr_drop_epoch
    return args


def main(argv=None, on_epoch=None):
    args = EXPERIMENT.start_run(argv)
    device = training.pick_device(args.device)
    permutation = data.paper_permutation()
    splits = data.load_splits(args.data_dir, args.download, args.cache_dir, args.valid_size)
    seed_everything(args.seed)
    batches = data.make_batches(splits, permutation, device, args.batch, args.test_batch, args.seed)
    model = build_model(args).to(device)
    return EXPERIMENT.fit(
        args, model, batches["train"], torch.nn.CrossEntropyLoss(),
        lambda split: evaluate_accuracy(model, batches[split]), on_epoch=on_epoch)


EXPERIMENT = Experiment(
    name="psMNIST", tasks=(Task("psMNIST", Metric("accuracy", True, ".2f", "%")),),
    build_parser=build_parser, main=main, derive_defaults=derive_defaults,
    lr_drops=lambda args: [args.lr_drop_epoch])

if __name__ == "__main__":
    main()
