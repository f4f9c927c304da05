"""Shared training helpers for the experiments: command-line flags, seeding, device choice, run
folders (arguments, per-epoch CSV/JSON log, best model, atomic checkpoints) and the epoch loop with
the paper's model selection (report test at the epoch of the best validation value).

Resuming goes through the same code path as a fresh start: the script rebuilds data and model from
the saved arguments, then ``fit`` restores model, optimiser, lr schedule, RNG states, batch order,
epoch and best-so-far from the last checkpoint (nanoGPT's pattern).
"""
import argparse
import csv
import dataclasses
import datetime
import json
import math
import os
import pathlib
import random
import sys
import time

import numpy as np
import torch
from tqdm import tqdm


def experiment_parser(doc):
    """An ArgumentParser whose help starts with the script's docstring (its usage examples)."""
    return argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def add_training_args(parser, *, epochs, experiment):
    """Flags every train.py shares; the experiment adds its paper hyperparameters itself."""
    group = parser.add_argument_group("run")
    group.add_argument("--epochs", type=int, default=epochs, help="training epochs (paper: %(default)s)")
    group.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    group.add_argument("--seed", type=int, default=1234, help="seed for weights, dropout and batch order")
    group.add_argument("--max-train-batches", type=int, default=None, metavar="N",
                       help="stop each epoch after N batches (smoke runs)")
    group.add_argument("--out-dir", default=None, metavar="DIR",
                       help=f"run folder (default: results/{experiment}/<timestamp>)")
    group.add_argument("--resume", default=None, metavar="RUN_DIR",
                       help="continue an interrupted run from its folder (uses its saved arguments)")
    group.add_argument("--no-progress", action="store_true", help="no progress bar inside epochs")
    return parser


def add_model_args(parser, *, nhid, nlayers, dt, alpha, dropout, lr, batch):
    """The UnICORNN hyperparameters every experiment exposes, with that experiment's paper values."""
    group = parser.add_argument_group("paper hyperparameters")
    group.add_argument("--nhid", type=int, default=nhid, help="units per layer (paper: %(default)s)")
    group.add_argument("--nlayers", type=int, default=nlayers, help="layers (paper: %(default)s)")
    group.add_argument("--dt", type=float, nargs="+", default=dt if isinstance(dt, list) else [dt],
                       help="time step: one value, or one per layer (paper: %(default)s)")
    group.add_argument("--alpha", type=float, default=alpha, help="alpha (paper: %(default)s)")
    group.add_argument("--dropout", type=float, default=dropout,
                       help="dropout over time (paper: %(default)s)")
    group.add_argument("--lr", type=float, default=lr, help="Adam learning rate (paper: %(default)s)")
    group.add_argument("--batch", type=int, default=batch, help="training batch (paper: %(default)s)")
    return parser


def parse_args(parser, argv, experiment):
    """Parse argv; with --resume, the run's saved arguments replace everything but --device,
    --no-progress and a larger --epochs (to extend a finished run)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    if args.resume is None:
        args.out_dir = args.out_dir or str(pathlib.Path("results") / experiment /
                                           datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
        return args
    saved_path = pathlib.Path(args.resume) / "args.json"
    if not saved_path.exists():
        raise SystemExit(f"--resume {args.resume}: no args.json there; pass the folder of a run "
                         "started by this script")
    saved = argparse.Namespace(**json.loads(saved_path.read_text()))
    saved.resume, saved.out_dir = args.resume, args.resume
    saved.no_progress = args.no_progress
    saved.device = args.device or saved.device
    saved.epochs = max(saved.epochs, args.epochs) if "--epochs" in argv else saved.epochs
    return saved


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def pick_device(name=None):
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {name}: no CUDA device is available here; use --device cpu")
    return device


def rng_states():
    states = {"python": random.getstate(), "numpy": np.random.get_state(),
              "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states):
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def atomic_save(obj, path):
    """torch.save to a temporary file, then rename: an interruption never leaves a torn file."""
    path = pathlib.Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


class RunFolder:
    """results/<experiment>/<timestamp>/: args.json, log.csv, log.json, checkpoint.pt, best_model.pt,
    summary.json."""

    def __init__(self, path, args):
        self.path = pathlib.Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        args_file = self.path / "args.json"
        if not args_file.exists():
            args_file.write_text(json.dumps(vars(args), indent=2, default=str))
        self.checkpoint_path = self.path / "checkpoint.pt"

    def load_checkpoint(self):
        if not self.checkpoint_path.exists():
            return None
        return torch.load(self.checkpoint_path, map_location="cpu", weights_only=False)

    def save_checkpoint(self, state):
        atomic_save(state, self.checkpoint_path)

    def save_best_model(self, model):
        atomic_save(model.state_dict(), self.path / "best_model.pt")

    def write_log(self, rows):
        """Rewrite log.csv and log.json with every epoch so far (atomic, consistent with the
        checkpoint after a resume)."""
        tmp = self.path / "log.csv.tmp"
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, self.path / "log.csv")
        self.write_json("log.json", rows)

    def write_json(self, name, obj):
        tmp = self.path / (name + ".tmp")
        tmp.write_text(json.dumps(obj, indent=2))
        os.replace(tmp, self.path / name)


@dataclasses.dataclass
class Metric:
    """How an experiment is scored, e.g. Metric("accuracy", True, 98.4, ".2f", "%")."""
    name: str
    higher_is_better: bool
    paper: float
    fmt: str
    unit: str = ""

    def better(self, new, old):
        return old is None or (new > old if self.higher_is_better else new < old)

    def show(self, value):
        return f"{value:{self.fmt}}{self.unit}"


@torch.no_grad()
def evaluate_accuracy(model, batches):
    """Accuracy in percent: argmax of the logits, or sigmoid(logit) rounded for one output."""
    model.eval()
    correct, total = 0, 0
    for inputs, targets in batches:
        logits = model(inputs)
        if logits.dim() == 1 or logits.shape[-1] == 1:
            predicted = (logits.reshape(-1) > 0).to(targets.dtype)
        else:
            predicted = logits.argmax(-1)
        correct += (predicted == targets.reshape(predicted.shape)).sum().item()
        total += targets.shape[0]
    return 100.0 * correct / total


@torch.no_grad()
def evaluate_rmse(model, batches):
    """sqrt(sum of squared errors / number of samples) over the whole split."""
    model.eval()
    squared, total = 0.0, 0
    for inputs, targets in batches:
        squared += (model(inputs).reshape(-1) - targets.reshape(-1)).double().square().sum().item()
        total += targets.shape[0]
    return math.sqrt(squared / total)


def fit(args, model, train_batches, loss_fn, evaluate, metric, lr_milestones=()):
    """Train with Adam (lr = args.lr, divided by 10 at each epoch in ``lr_milestones``) for
    args.epochs, evaluating ``evaluate("valid")`` and ``evaluate("test")`` every epoch and
    checkpointing after each; return the summary (test value at the epoch of the best valid value)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(lr_milestones), gamma=0.1)
    run = RunFolder(args.out_dir, args)
    rows, best = [], {"valid": None, "test": None, "epoch": None}
    start_epoch = 0
    checkpoint = run.load_checkpoint()
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        train_batches.load_state_dict(checkpoint["batches"])
        restore_rng_states(checkpoint["rng"])
        rows, best, start_epoch = checkpoint["log"], checkpoint["best"], checkpoint["epoch"]
        print(f"resuming {run.path} after epoch {start_epoch}")
    else:
        print(f"run folder: {run.path}")

    n_batches = len(train_batches)
    if args.max_train_batches is not None:
        n_batches = min(n_batches, args.max_train_batches)
    for epoch in range(start_epoch, args.epochs):
        model.train()
        started = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        loss_sum = torch.zeros(())
        bar = tqdm(train_batches, total=n_batches, desc=f"epoch {epoch + 1}", leave=False,
                   disable=args.no_progress, dynamic_ncols=True)
        for step, (inputs, targets) in enumerate(bar):
            if step == n_batches:
                break
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(inputs), targets)
            loss.backward()
            optimizer.step()
            loss_sum = loss_sum.to(loss.device) + loss.detach()  # no per-step GPU sync
        bar.close()
        scheduler.step()
        valid, test = evaluate("valid"), evaluate("test")
        seconds = time.perf_counter() - started
        if metric.better(valid, best["valid"]):
            best = {"valid": valid, "test": test, "epoch": epoch + 1}
            run.save_best_model(model)
        rows.append({"epoch": epoch + 1, "train_loss": loss_sum.item() / max(n_batches, 1),
                     f"valid_{metric.name}": valid, f"test_{metric.name}": test, "lr": lr,
                     "seconds": round(seconds, 2)})
        print(f"epoch {epoch + 1:4d}  loss {rows[-1]['train_loss']:.4f}  "
              f"valid {metric.show(valid)}  test {metric.show(test)}  lr {lr:.3g}  {seconds:.1f}s",
              flush=True)
        run.write_log(rows)
        run.save_checkpoint({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                             "scheduler": scheduler.state_dict(),
                             "batches": train_batches.state_dict(), "rng": rng_states(),
                             "epoch": epoch + 1, "best": best, "log": rows})

    summary = {f"best_valid_{metric.name}": best["valid"], f"test_{metric.name}": best["test"],
               "best_epoch": best["epoch"], f"paper_test_{metric.name}": metric.paper,
               "epochs": args.epochs}
    run.write_json("summary.json", summary)
    if best["test"] is not None:
        print(f"final test {metric.name}: {metric.show(best['test'])} "
              f"(paper: {metric.paper}{metric.unit}), selected at epoch {best['epoch']} by valid "
              f"{metric.show(best['valid'])}")
    return summary
