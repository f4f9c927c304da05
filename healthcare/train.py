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
from unicornn import training
from unicornn.paths import default_data_dir

# Per-task paper values; the remaining hyperparameters are shared.
TASKS = {
    "RR": {"lr": 0.00398, "dt": [0.011], "alpha": 9.0, "paper_rmse": 1.00},
    "HR": {"lr": 0.00288, "dt": [0.046], "alpha": 10.0, "paper_rmse": 1.31},
}


def build_parser(name="RR"):
    task = TASKS[name]
    parser = training.experiment_parser(__doc__)
    parser.add_argument("--name", choices=sorted(TASKS), default=name,
                        help="RR (respiratory rate) or HR (heart rate); sets that task's paper defaults")
    training.add_model_args(parser, nhid=128, nlayers=3, dt=task["dt"], alpha=task["alpha"],
                            dropout=0.1, lr=task["lr"], batch=32)
    parser.add_argument("--test-batch", type=int, default=1192, help="evaluation batch (%(default)s)")
    parser.add_argument("--lr-drop-epoch", type=int, default=250,
                        help="divide lr by 10 after this epoch (paper: %(default)s)")
    parser.add_argument("--data-dir", default=str(default_data_dir("healthcare")),
                        help="folder with RR/ and HR/ cached splits (trainx.npy, ...) or where to make them")
    training.add_training_args(parser, epochs=500, experiment="healthcare")
    return parser


def main(argv=None):
    # --name decides the defaults of the other flags, so read it first
    name = argparse.ArgumentParser(add_help=False)
    name.add_argument("--name", choices=sorted(TASKS), default="RR")
    known, _ = name.parse_known_args(argv)
    args = training.parse_args(build_parser(known.name), argv, f"healthcare_{known.name}")
    device = training.pick_device(args.device)
    splits = data.load_splits(args.data_dir, args.name)
    training.seed_everything(args.seed)
    batches = data.make_batches(splits, device, args.batch, args.test_batch, args.seed)
    model = build_model(args).to(device)
    metric = training.Metric(f"{args.name}_RMSE", higher_is_better=False,
                             paper=TASKS[args.name]["paper_rmse"], fmt=".4f")
    mse = torch.nn.MSELoss()
    return training.fit(
        args, model, batches["train"], lambda out, target: mse(out.reshape(-1), target),
        lambda split: training.evaluate_rmse(model, batches[split]), metric,
        lr_milestones=[args.lr_drop_epoch])


if __name__ == "__main__":
    main()
