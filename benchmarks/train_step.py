"""Time one training step (forward, backward, Adam) of each experiment's model with the paper's
hyperparameters, on random inputs of the paper's shapes; on the CPU for both CPU implementations.
Medians over --steps steps after one warm-up step. Prints a table and writes JSON.

    python benchmarks/train_step.py --device cpu
    python benchmarks/train_step.py --device cpu --tasks psMNIST --cpu-implementations compiled --steps 40
    python benchmarks/train_step.py --device cuda --steps 20
"""
import argparse
import datetime
import json
import pathlib
import statistics
import sys
import time

import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from repro import cpu_memory, experiments  # noqa: E402
from unicornn import cpu_implementation  # noqa: E402

# task -> (sequence length, input features, classes (1: regression), training batches per epoch)
SHAPES = {"psMNIST": (784, 1, 10, 1782), "noisy_cifar": (1000, 96, 10, 1600),
          "eigenworms": (17984, 6, 5, 23), "healthcare_RR": (4000, 2, 1, 174)}


def step_seconds(task, device, steps):
    experiment, declared = experiments.find_task(task)
    args = experiment.paper_defaults(declared)
    model = experiments.train_module(experiment.name).build_model(args).to(device)
    n, features, classes, _ = SHAPES[task]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, args.batch, features, generator=g).to(device)
    if classes > 1:
        target, loss_fn = torch.randint(0, classes, (args.batch,), generator=g).to(device), torch.nn.CrossEntropyLoss()
    else:
        target, loss_fn = torch.randn(args.batch, 1, generator=g).to(device), torch.nn.MSELoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    times = []
    for _ in range(steps + 1):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(x), target).backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - started)
    return statistics.median(times[1:])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tasks", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--cpu-implementations", nargs="+", default=["compiled", "torch_loop"],
                        choices=["compiled", "torch_loop"], help="on the CPU: which implementations to time")
    parser.add_argument("--out", default=None, help="JSON path (default benchmarks/results/train_step-<device>.json)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    variants = args.cpu_implementations if device.type == "cpu" else [None]
    if device.type == "cpu":
        cpu_memory.reuse_freed_memory()  # as train.py runs on the CPU
    rows = []
    for task in args.tasks:
        row = {"task": task, "batches_per_epoch": SHAPES[task][3]}
        for variant in variants:
            if variant:
                with cpu_implementation(variant):
                    row[variant] = step_seconds(task, device, args.steps)
            else:
                row["kernel"] = step_seconds(task, device, args.steps)
        rows.append(row)
    names = variants if device.type == "cpu" else ["kernel"]
    print(f"\nOne training step of the paper's model, median seconds on {device} "
          f"({torch.get_num_threads()} threads, {datetime.date.today()})")
    print(f"{'task':>14}" + "".join(f"{n:>12}" for n in names) + f"{'steps/epoch':>13}")
    for row in rows:
        print(f"{row['task']:>14}" + "".join(f"{row[n]:12.3f}" for n in names) + f"{row['batches_per_epoch']:13d}")
    print("(an epoch is more than its steps: time real epochs with benchmarks/epoch_time.py)")
    out = pathlib.Path(args.out or ROOT / "benchmarks" / "results" / f"train_step-{device.type}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"device": str(device), "date": str(datetime.date.today()),
                               "threads": torch.get_num_threads(), "rows": rows}, indent=2))
    return rows


if __name__ == "__main__":
    main()
