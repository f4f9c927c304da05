"""Seeds and hyperparameter searches of one experiment as Ray Tune trials.

    python -m repro.sweep psMNIST --seeds 0 1 2 3 4
    python -m repro.sweep healthcare --name HR --seeds 0 1 --sample lr=loguniform:1e-4:1e-2 \\
        dt=uniform:0.01:0.1 --num-samples 20
    python -m repro.sweep --resume results/sweeps/psMNIST-20261129-120000-000001

Flags the sweep does not know are the experiment's train.py flags, fixed for every trial. Each trial
is the experiment's own ``main`` (the code path of its train.py, no second training loop) with the
trial's seed and sampled values as flags, writing a normal run folder under <sweep>/runs/, so the
report and TensorBoard read sweep runs like single runs. Each epoch's log row goes to Tune.

--sample NAME=KIND:ARGS draws a train.py flag per trial: uniform:LOW:HIGH, loguniform:LOW:HIGH,
randint:LOW:HIGH (HIGH excluded) or choice:A,B,C. For a flag with one value per layer, NAME.I draws
layer I's value (e.g. dt.1=loguniform:0.01:0.1) and keeps the others. --num-samples draws that many
settings; with --seeds every setting runs once per seed.

Resuming: the sweep folder is the record. A sweep stopped by Ctrl-C or a killed driver continues
with --resume SWEEP_DIR: trials that finished are not run again (a finished run folder is only
reported), and an interrupted trial continues from its run folder's last checkpoint.

On a cluster: start Ray on every node (``ray start --head`` on one, ``ray start --address HEAD:6379``
on the others) with this repository and the data at the same path on all of them and the sweep
folder on shared storage, then pass --address auto (or HEAD:6379) from the head node.
"""
import argparse
import datetime
import json
import os
import pathlib
import sys

from . import cli, experiments
from .paths import REPO_ROOT, RESULTS_ROOT
from .run_folder import CHECKPOINT, RunFolder, timestamp

SPEC = "sweep.json"
DISTRIBUTIONS = ("uniform", "loguniform", "randint", "choice")


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m repro.sweep", description=__doc__, allow_abbrev=False,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment", nargs="?", choices=sorted(experiments.MODULES),
                        help="which experiment (not needed with --resume)")
    parser.add_argument("--seeds", type=cli.seed_int, nargs="+", default=None,
                        help="run every setting once per seed (default: the experiment's --seed)")
    parser.add_argument("--sample", nargs="+", default=[], metavar="NAME=KIND:ARGS",
                        help="draw a train.py flag per trial (see above)")
    parser.add_argument("--num-samples", type=cli.positive_int, default=1,
                        help="settings to draw (default: 1)")
    parser.add_argument("--out-dir", default=None, metavar="DIR",
                        help=f"the sweep's folder (default: {RESULTS_ROOT}/sweeps/<experiment>-<date-time>)")
    parser.add_argument("--resume", default=None, metavar="SWEEP_DIR",
                        help="continue an interrupted sweep (its experiment and flags come from "
                             "SWEEP_DIR/sweep.json)")
    parser.add_argument("--address", default=None,
                        help="join a running Ray cluster (HOST:PORT or auto); default: start Ray here")
    parser.add_argument("--cpus-per-trial", type=float, default=1.0, help="CPUs per trial (default: 1)")
    parser.add_argument("--gpus-per-trial", type=float, default=None,
                        help="GPUs per trial, fractions pack trials onto one GPU (default: 0.25 where "
                             "Ray sees a GPU, else 0)")
    parser.add_argument("--max-concurrent", type=cli.positive_int, default=None,
                        help="at most this many trials at once (default: as resources allow)")
    return parser


# ---- the search space ---------------------------------------------------------------------------

def parse_sample(text, train_parser, train_argv, base_args):
    """'lr=loguniform:1e-4:1e-2' -> ('lr', 'loguniform', [1e-4, 1e-2]), checked against train.py."""
    try:
        name, spec = text.split("=", 1)
        kind, rest = spec.split(":", 1)
    except ValueError:
        raise SystemExit(f"--sample {text!r}: expected NAME=KIND:ARGS, e.g. lr=loguniform:1e-4:1e-2") from None
    dest, _, index = name.replace("-", "_").partition(".")
    if not hasattr(base_args, dest) or dest in experiments.NOT_A_SETTING | {"epochs"}:
        raise SystemExit(f"--sample {text!r}: {name!r} is not a hyperparameter flag of this train.py")
    if index and not (index.isdigit() and isinstance(getattr(base_args, dest), list)
                      and int(index) < len(getattr(base_args, dest))):
        raise SystemExit(f"--sample {text!r}: {dest} has {getattr(base_args, dest)!r}; "
                         f"{name!r} must index one of its values")
    if kind not in DISTRIBUTIONS:
        raise SystemExit(f"--sample {text!r}: KIND must be one of {', '.join(DISTRIBUTIONS)}")
    values = rest.split(",") if kind == "choice" else rest.split(":")
    if kind != "choice":
        try:
            values = [int(v) if kind == "randint" else float(v) for v in values]
        except ValueError:
            raise SystemExit(f"--sample {text!r}: {kind} needs numbers LOW:HIGH") from None
        if len(values) != 2 or not values[0] < values[1] or (kind == "loguniform" and values[0] <= 0):
            raise SystemExit(f"--sample {text!r}: {kind} needs LOW:HIGH with LOW < HIGH"
                             + (" and LOW > 0" if kind == "loguniform" else ""))
    for probe in (values if kind == "choice" else values[:1]):  # the flag's own check, e.g. dt > 0
        check_flags(train_parser, train_argv + flag_argv(train_parser, base_args, {name: probe}))
    return name, kind, values


def param_space(spec):
    from ray import tune
    space = {name: getattr(tune, kind)(*values) if kind != "choice" else tune.choice(values)
             for name, kind, values in spec["samples"]}
    if spec["seeds"]:
        space["seed"] = tune.grid_search(spec["seeds"])
    return space


def flag_argv(train_parser, base_args, config):
    """Flags that set a trial's values; NAME.I replaces value I of a per-layer flag."""
    argv = []
    for name, value in config.items():
        dest, _, index = name.replace("-", "_").partition(".")
        flag = cli.flag_for(train_parser, dest)
        if index:
            values = list(getattr(base_args, dest))
            values[int(index)] = value
            argv += [flag, *map(str, values)]
        else:
            argv += [flag, str(value)]
    return argv


def check_flags(train_parser, argv):
    args, _ = cli.parse_with_given(train_parser, argv)
    cli.check_cross_flag_rules(train_parser, args)
    return args


# ---- one trial ----------------------------------------------------------------------------------

def run_dir_name(trial_id, config):
    described = ",".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(config.items()))
    return f"{trial_id}_{described}"[:120] if described else trial_id


def run_trial(config, spec, sweep_dir):
    """A Tune function trainable: the experiment's main() in the trial's run folder, every epoch's
    row reported to Tune. A finished run is only reported again; a started one is resumed."""
    import torch
    from ray import tune

    context = tune.get_context()
    torch.set_num_threads(max(1, int(spec["resources"]["cpu"])))
    run = RunFolder(pathlib.Path(sweep_dir) / "runs" / run_dir_name(context.get_trial_id(), config))
    experiment = experiments.get(spec["experiment"])
    summary = run.read_summary()
    if summary is not None:
        if summary.get("status") == "finished":
            for row in run.read_log():
                tune.report(row)
            return
        raise RuntimeError(f"{run.path} stopped earlier ({summary.get('status')}); see its summary")
    if run.file(CHECKPOINT).exists():
        argv = ["--resume", str(run.path), "--no-progress"]
    else:
        train_parser = experiment.parser_for(spec["train_argv"])
        base = check_flags(train_parser, spec["train_argv"])
        argv = spec["train_argv"] + flag_argv(train_parser, base, config) + \
            ["--out-dir", str(run.path), "--no-progress"]
    try:
        experiment.main(argv, on_epoch=lambda row: tune.report(dict(row)))
    except SystemExit as err:  # a clear message from the harness: the trial fails with it
        raise RuntimeError(str(err)) from None


# ---- the driver ---------------------------------------------------------------------------------

def absolute_paths(train_parser, argv):
    """Make path flags (--data-dir, --cache-dir) absolute: trials may run in other directories."""
    path_flags = {opt for a in train_parser._actions if a.dest.endswith("_dir") for opt in a.option_strings}
    out, path_follows = [], False
    for token in argv:
        flag, eq, value = token.partition("=")
        if path_follows:
            out.append(str(pathlib.Path(token).resolve()))
        elif eq and flag in path_flags:
            out.append(f"{flag}={pathlib.Path(value).resolve()}")
        else:
            out.append(token)
        path_follows = not eq and token in path_flags
    return out


def new_spec(parser, args, train_argv):
    if train_argv and not train_argv[0].startswith("-"):
        parser.error(f"unexpected {train_argv[0]!r}")
    experiment = experiments.get(args.experiment)
    train_parser = experiment.parser_for(train_argv)
    base, given = cli.parse_with_given(train_parser, train_argv)
    cli.check_cross_flag_rules(train_parser, base)
    for own in ("resume", "out_dir"):
        if own in given:
            parser.error(f"--{own.replace('_', '-')} of a trial is chosen by the sweep")
    if "seed" in given and args.seeds:
        parser.error("give either --seed (one seed for every trial) or --seeds, not both")
    samples = [parse_sample(text, train_parser, train_argv, base) for text in args.sample]
    metric = experiment.task_for(train_argv).metric
    return {"experiment": args.experiment, "train_argv": absolute_paths(train_parser, train_argv),
            "seeds": args.seeds, "samples": samples, "num_samples": args.num_samples,
            "max_concurrent": args.max_concurrent, "metric": f"valid_{metric.name}",
            "mode": "max" if metric.higher_is_better else "min",
            "resources": {"cpu": args.cpus_per_trial, "gpu": args.gpus_per_trial},
            "created": datetime.datetime.now().isoformat(timespec="seconds")}


def start_ray(address):
    import ray
    # Keep the run folders the only TensorBoard logs (Ray's trial folders get JSON and CSV only),
    # keep the working directory, and save the sweep's state often (small files).
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ["RAY_CHDIR_TO_TRIAL_DIR"] = "0"
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")
    path = os.pathsep.join([str(REPO_ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    ray.init(address=address, include_dashboard=False, runtime_env={"env_vars": {"PYTHONPATH": path}},
             logging_level="WARNING")
    return ray.cluster_resources()


def main(argv=None):
    parser = build_parser()
    args, train_argv = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    if args.resume:
        sweep_dir = pathlib.Path(args.resume).resolve()
        if args.experiment or train_argv or args.sample or args.seeds:
            parser.error("--resume takes the experiment and every flag from SWEEP_DIR/sweep.json; "
                         "give nothing else but --address")
        try:
            spec = json.loads((sweep_dir / SPEC).read_text())
        except (OSError, ValueError) as err:
            parser.error(f"--resume {args.resume}: cannot read {SPEC} there ({err})")
    else:
        if args.experiment is None:
            parser.error("name the experiment (or --resume SWEEP_DIR)")
        spec = new_spec(parser, args, train_argv)
        sweep_dir = pathlib.Path(args.out_dir or RESULTS_ROOT / "sweeps" / f"{args.experiment}-{timestamp()}").resolve()
        if (sweep_dir / SPEC).exists():
            parser.error(f"--out-dir {sweep_dir} already holds a sweep; continue it with --resume {sweep_dir}")

    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback
    resources = start_ray(args.address)
    if spec["resources"]["gpu"] is None:  # decided once, on the first start
        spec["resources"]["gpu"] = 0.25 if resources.get("GPU", 0) > 0 else 0
    if spec["resources"]["gpu"] > resources.get("GPU", 0):
        raise SystemExit(f"--gpus-per-trial {spec['resources']['gpu']}: Ray sees "
                         f"{resources.get('GPU', 0)} GPUs here; pass --gpus-per-trial 0 to run on CPUs")
    sweep_dir.mkdir(parents=True, exist_ok=True)
    (sweep_dir / SPEC).write_text(json.dumps(spec, indent=2))

    trainable = tune.with_resources(tune.with_parameters(run_trial, spec=spec, sweep_dir=str(sweep_dir)),
                                    spec["resources"])
    if args.resume:
        tuner = tune.Tuner.restore(str(sweep_dir), trainable)
    else:
        tuner = tune.Tuner(
            trainable, param_space=param_space(spec),
            tune_config=tune.TuneConfig(metric=spec["metric"], mode=spec["mode"],
                                        num_samples=spec["num_samples"],
                                        max_concurrent_trials=spec["max_concurrent"]),
            run_config=tune.RunConfig(name=sweep_dir.name, storage_path=str(sweep_dir.parent),
                                      failure_config=tune.FailureConfig(max_failures=0), verbose=1,
                                      callbacks=[JsonLoggerCallback(), CSVLoggerCallback()]))
    results = tuner.fit()
    failed = [r for r in results if r.error]
    print(f"\nsweep {sweep_dir}: {len(results) - len(failed)} trials finished, {len(failed)} failed"
          + "".join(f"\n  failed: {r.error}" for r in failed))
    print(f"results: python -m repro.report {sweep_dir}    curves: tensorboard --logdir {sweep_dir / 'runs'}")
    return results


if __name__ == "__main__":
    main()
