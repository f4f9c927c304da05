"""Real psMNIST epochs with the paper's set-up, timed: training and evaluation as train.py runs them,
on the machine as it is (idle) or beside a second CPU-heavy process (--beside N: N copies of the
same run start together, as a second user's job would).

Each run is ``psMNIST/train.py --epochs E`` on real MNIST in a fresh run folder; its log.json gives
the seconds of every epoch, split into training and evaluation. Prints a table and writes JSON.

    python benchmarks/epoch_time.py --data-dir /path/to/mnist                 # one run, machine idle
    python benchmarks/epoch_time.py --data-dir /path/to/mnist --beside 1      # two runs at once
    python benchmarks/epoch_time.py --data-dir /path/to/mnist --max-train-batches 200   # a quick probe

Flags after ``--`` go to train.py unchanged (e.g. ``-- --nhid 64`` to time another set-up).
"""
import argparse
import datetime
import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from repro.run_folder import LOG  # noqa: E402


def start_run(out_dir, args, extra_env):
    command = [sys.executable, str(ROOT / "psMNIST" / "train.py"), "--data-dir", args.data_dir,
               "--cache-dir", str(pathlib.Path(out_dir).parent / "mnist-cache"), "--epochs", str(args.epochs),
               "--device", "cpu", "--no-progress", "--out-dir", str(out_dir)]
    if args.max_train_batches:
        command += ["--max-train-batches", str(args.max_train_batches)]
    command += args.train_flags
    return subprocess.Popen(command, cwd=ROOT, env=dict(os.environ, **extra_env), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True, help="real MNIST: a folder with the four idx files")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--beside", type=int, default=0, help="other copies of the run at the same time")
    parser.add_argument("--max-train-batches", type=int, default=None, help="a partial epoch (probe)")
    parser.add_argument("--env", nargs="*", default=[], metavar="NAME=VALUE",
                        help="environment of the timed runs (e.g. to compare threading settings)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "epoch_time-cpu.json"))
    parser.add_argument("train_flags", nargs="*", metavar="-- TRAIN_FLAGS",
                        help="flags for psMNIST/train.py after --")
    args = parser.parse_args(argv)
    extra_env = dict(item.split("=", 1) for item in args.env)
    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        folders = [pathlib.Path(scratch) / f"run{i}" for i in range(1 + args.beside)]
        runs = [start_run(folder, args, extra_env) for folder in folders]
        outputs = [run.communicate()[0] for run in runs]
        wall = time.perf_counter() - started
        for run, output in zip(runs, outputs):
            if run.returncode != 0:
                raise SystemExit(f"a timed run failed:\n{output[-3000:]}")
        logs = [json.loads((folder / LOG).read_text()) for folder in folders]
    rows = [{"run": i, **{k: row[k] for k in ("epoch", "seconds", "train_seconds", "eval_seconds", "valid_accuracy")}}
            for i, log in enumerate(logs) for row in log]
    print(f"\npsMNIST epochs, paper set-up, real MNIST, {len(runs)} run(s) at once, "
          f"{os.cpu_count()} CPUs ({datetime.date.today()}; env {extra_env or 'default'}"
          f"{'; ' + str(args.max_train_batches) + ' training batches' if args.max_train_batches else ''}"
          f"{'; train.py ' + ' '.join(args.train_flags) if args.train_flags else ''})")
    print(f"{'run':>4} {'epoch':>6} {'total s':>9} {'training s':>11} {'evaluation s':>13} {'valid %':>8}")
    for r in rows:
        print(f"{r['run']:>4} {r['epoch']:>6} {r['seconds']:9.1f} {r['train_seconds']:11.1f} "
              f"{r['eval_seconds']:13.1f} {r['valid_accuracy']:8.2f}")
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"date": str(datetime.date.today()), "machine": platform.processor() or platform.machine(),
                               "cpus": os.cpu_count(), "runs_at_once": len(runs), "env": extra_env,
                               "max_train_batches": args.max_train_batches,
                               "train_flags": args.train_flags, "wall_seconds": wall,
                               "rows": rows}, indent=2))
    print(f"wrote {out}")
    return rows


if __name__ == "__main__":
    main()
