"""Train UnICORNN on BIDMC32 respiratory rate (--name RR) or heart rate (--name HR) with the
paper's hyperparameters for that task.

    python healthcare/train.py --name RR
    python healthcare/train.py --name HR
"""
import pathlib
import sys

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import torch

from healthcare import data
from healthcare.model import build_model
from repro import cli, training
from repro.experiment import Experiment, Task
from repro.metrics import Metric, evaluate_rmse
from repro.paths import default_data_dir
from repro.seeding import seed_everything

# Per-task paper hyperparameters; the remaining ones are shared.
TASKS = (
    Task("healthcare_RR", Metric("RR_RMSE", False, ".4f"), choice="RR",
         defaults={"lr": 0.00398, "dt": [0.011], "alpha": 9.0}),
    Task("healthcare_HR", Metric("HR_RMSE", False, ".4f"), choice="HR",
         defaults={"lr": 0.00288, "dt": [0.046], "alpha": 10.0}),
)


def build_parser():
    parser = cli.experiment_parser(__doc__)
    parser.add_argument("--name", choices=[t.choice for t in TASKS], default=TASKS[0].choice,
                        help="RR (respiratory rate) or HR (heart rate); sets that task's paper defaults")
    cli.add_model_args(parser, nhid=128, nlayers=3, dt=TASKS[0].defaults["dt"],
                       alpha=TASKS[0].defaults["alpha"], dropout=0.1, lr=TASKS[0].defaults["lr"], batch=32)
    parser.add_argument("--test-batch", type=cli.positive_int, default=1192,
                        help="evaluation batch (on the CPU at most --batch: faster there)")
    cli.add_lr_drop_arg(parser, default=250)
    cli.add_data_args(parser, data_dir=default_data_dir("healthcare"),
                      what="folder with RR/ and HR/ cached splits (trainx.npy, ...) or where to make them")
    cli.add_training_args(parser, epochs=500)
    return parser


def main(argv=None, on_epoch=None):
    args = EXPERIMENT.start_run(argv)
    device = training.pick_device(args.device)
    splits = data.load_splits(args.data_dir, args.name, args.download)
    seed_everything(args.seed)
    batches = data.make_batches(splits, device, args.batch, args.test_batch, args.seed)
    model = build_model(args).to(device)
    mse = torch.nn.MSELoss()
    return EXPERIMENT.fit(
        args, model, batches["train"], lambda out, target: mse(out.reshape(-1), target),
        lambda split: evaluate_rmse(model, batches[split]), on_epoch=on_epoch)


EXPERIMENT = Experiment(name="healthcare", tasks=TASKS, task_flag="--name", build_parser=build_parser,
                        main=main, lr_drops=lambda args: [args.lr_drop_epoch])

if __name__ == "__main__":
    main()
