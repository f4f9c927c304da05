"""Train UnICORNN on BIDMC32 respiratory rate (--name RR, paper RMSE 1.00) or heart rate
(--name HR, paper RMSE 1.31) with the paper's hyperparameters for that task.

    python healthcare/train.py --name RR
    python healthcare/train.py --name HR
"""
import argparse
import pathlib
import sys

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import torch

from healthcare import data
from healthcare.model import build_model
from repro import cli, training
from repro.metrics import Metric, evaluate_rmse
from repro.paths import default_data_dir
from repro.seeding import seed_everything

EXPERIMENT = "healthcare"
# Per-task paper values; the remaining hyperparameters are shared.
TASKS = {
    "RR": {"lr": 0.00398, "dt": [0.011], "alpha": 9.0, "paper_rmse": 1.00},
    "HR": {"lr": 0.00288, "dt": [0.046], "alpha": 10.0, "paper_rmse": 1.31},
}


def build_parser(name="RR"):
    task = TASKS[name]
    parser = cli.experiment_parser(__doc__)
    parser.add_argument("--name", choices=sorted(TASKS), default=name,
                        help="RR (respiratory rate) or HR (heart rate); sets that task's paper defaults")
    cli.add_model_args(parser, nhid=128, nlayers=3, dt=task["dt"], alpha=task["alpha"],
                       dropout=0.1, lr=task["lr"], batch=32)
    parser.add_argument("--test-batch", type=cli.positive_int, default=1192, help="evaluation batch")
    parser.add_argument("--lr-drop-epoch", type=cli.positive_int, default=250,
                        help="divide lr by 10 after this epoch (paper)")
    cli.add_data_args(parser, data_dir=default_data_dir("healthcare"),
                      what="folder with RR/ and HR/ cached splits (trainx.npy, ...) or where to make them")
    cli.add_training_args(parser, epochs=500, task=f"{EXPERIMENT}_{name}")
    return parser


def task_name(argv):
    """--name decides the defaults of the other flags, so it is read first."""
    name = argparse.ArgumentParser(add_help=False)
    name.add_argument("--name", choices=sorted(TASKS), default="RR")
    return name.parse_known_args(argv)[0].name


def metric_of(name):
    return Metric(f"{name}_RMSE", higher_is_better=False, paper=TASKS[name]["paper_rmse"], fmt=".4f")


def main(argv=None, on_epoch=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    name = task_name(argv)
    args = cli.parse_args(build_parser(name), argv, experiment=EXPERIMENT, task=f"{EXPERIMENT}_{name}")
    device = training.pick_device(args.device)
    splits = data.load_splits(args.data_dir, args.name, args.download)
    seed_everything(args.seed)
    batches = data.make_batches(splits, device, args.batch, args.test_batch, args.seed)
    model = build_model(args).to(device)
    mse = torch.nn.MSELoss()
    return training.fit(
        args, model, batches["train"], lambda out, target: mse(out.reshape(-1), target),
        lambda split: evaluate_rmse(model, batches[split]), metric_of(args.name),
        lr_milestones=[args.lr_drop_epoch], on_epoch=on_epoch)


if __name__ == "__main__":
    main()
