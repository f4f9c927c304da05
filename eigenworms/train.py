"""Train UnICORNN on EigenWorms (sequences of 17984 steps) with the paper's hyperparameters.

    python eigenworms/train.py                 # downloads the archive with aeon, splits, caches
"""
import pathlib
import sys

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import torch

from eigenworms import data
from eigenworms.model import build_model
from repro import cli, training
from repro.experiment import Experiment, Task
from repro.metrics import Metric, evaluate_accuracy
from repro.paths import default_data_dir
from repro.seeding import seed_everything


def build_parser():
    parser = cli.experiment_parser(__doc__)
    cli.add_model_args(parser, nhid=32, nlayers=2, dt=[2.81e-5, 0.0343], alpha=0.0,
                       dropout=0.0, lr=0.0076, batch=8)
    cli.add_data_args(parser, data_dir=default_data_dir("eigenworms"),
                      what="folder with the cached split (trainx.npy, ...) or where to make it")
    cli.add_training_args(parser, epochs=250)
    return parser


def main(argv=None, on_epoch=None):
    args = EXPERIMENT.start_run(argv)
    device = training.pick_device(args.device)
    splits = data.load_splits(args.data_dir, args.download)
    seed_everything(args.seed)
    batches = data.make_batches(splits, device, args.batch, args.seed)
    model = build_model(args).to(device)
    return EXPERIMENT.fit(
        args, model, batches["train"], torch.nn.CrossEntropyLoss(),
        lambda split: evaluate_accuracy(model, batches[split]), on_epoch=on_epoch)


# the paper keeps the learning rate constant (no lr drops)
EXPERIMENT = Experiment(
    name="eigenworms", tasks=(Task("eigenworms", Metric("accuracy", True, ".2f", "%")),),
    build_parser=build_parser, main=main)

if __name__ == "__main__":
    main()
