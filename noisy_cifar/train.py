"""Train UnICORNN on noise-padded CIFAR-10 with the paper's hyperparameters.

    python noisy_cifar/train.py                   # paper set-up, downloads CIFAR-10 with torchvision
"""
import pathlib
import sys

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import torch

from noisy_cifar import data
from noisy_cifar.model import build_model
from repro import cli, training
from repro.experiment import Experiment, Task
from repro.metrics import Metric, evaluate_accuracy
from repro.paths import default_data_dir
from repro.seeding import seed_everything


def build_parser():
    parser = cli.experiment_parser(__doc__)
    cli.add_model_args(parser, nhid=128, nlayers=3, dt=0.126, alpha=13.0, dropout=0.1,
                       lr=0.00314, batch=30)
    parser.add_argument("--test-batch", type=cli.positive_int, default=1000,
                        help="evaluation batch (on the CPU at most --batch: faster there)")
    parser.add_argument("--lr-step", type=cli.positive_int, default=250,
                        help="divide lr by 10 every this many epochs (paper)")
    parser.add_argument("--valid-size", type=cli.positive_int, default=2000, help="valid split (paper)")
    cli.add_data_args(parser, data_dir=default_data_dir("cifar10"),
                      what="torchvision CIFAR10 root (holding cifar-10-batches-py/)")
    cli.add_training_args(parser, epochs=500)
    return parser


def main(argv=None, on_epoch=None):
    args = EXPERIMENT.start_run(argv)
    device = training.pick_device(args.device)
    noise = data.paper_noise()
    splits = data.load_splits(args.data_dir, args.download, args.valid_size)
    seed_everything(args.seed)
    batches = data.make_batches(splits, noise, device, args.batch, args.test_batch, args.seed)
    model = build_model(args).to(device)
    return EXPERIMENT.fit(
        args, model, batches["train"], torch.nn.CrossEntropyLoss(),
        lambda split: evaluate_accuracy(model, batches[split]), on_epoch=on_epoch)


EXPERIMENT = Experiment(
    name="noisy_cifar", tasks=(Task("noisy_cifar", Metric("accuracy", True, ".2f", "%")),),
    build_parser=build_parser, main=main,
    lr_drops=lambda args: list(range(args.lr_step, args.epochs, args.lr_step)))

if __name__ == "__main__":
    main()
