"""Seeds and hyperparameter searches of one experiment as Ray Tune trials.

    python -m repro.sweep psMNIST --seeds 0 1 2 3 4
    python -m repro.sweep healthcare --name HR --seeds 0 1 --sample lr=loguniform:1e-4:1e-2 \\
        dt=uniform:0.01:0.1 --num-samples 20
    python -m repro.sweep --resume results/sweeps/psMNIST-20261129-120000-000001

Flags the sweep does not know are the experiment's train.py flags, fixed for every trial. Each trial
is the experiment's own ``main`` (the code path of its train.py, no second training loop) with the
trial's seed and sampled values as flags, writing a normal run folder under <sweep>/runs/, so the
report and TensorBoard read sweep runs like single runs. Each epoch's log row goes to Tune.

--sample NAME=KIND:ARGS draws a train.py flag per setting: uniform:LOW:HIGH, loguniform:LOW:HIGH,
randint:LOW:HIGH (HIGH excluded) or choice:A,B,C. For a flag with one value per layer, NAME.I draws
layer I's value (e.g. dt.1=loguniform:0.01:0.1) and keeps the others. --num-samples draws that many
settings; with --seeds every setting runs once per seed. Every value a range can draw must pass
train.py's own checks (both ends of every range, every choice, and their combinations are checked
before Ray starts).

The sweep folder is the record: sweep.json holds the flags and every trial's values, drawn once, and
each trial's run folder holds its progress. --resume SWEEP_DIR continues a sweep that was stopped
(Ctrl-C, a killed driver, failed trials): finished trials are not run again, the others continue
from their run folders' last checkpoints. With --resume only --cpus-per-trial, --gpus-per-trial,
--max-concurrent and --address may change. The sweep exits with status 1 unless every trial
finished, and prints each failed trial's error and the --resume command that continues it.

Ray: without --address a local Ray starts in-process. On a cluster, start Ray on every node
(``ray start --head --port 6379`` on one, ``RAY_AUTH_MODE=token ray start --address HEAD:6379`` on
the others, each with the head's ~/.ray/auth_token) with this repository and the data at the same
path on all of them and the sweep folder on shared storage, then pass --address HEAD:6379 (or auto
on the head). A trial whose node is lost is tried again on another node, from its run folder's
last checkpoint.
"""
import argparse
import contextlib
import datetime
import io
import itertools
import json
import logging
import os
import pathlib
import shutil
import sys

from . import cli, experiments, folder_lock, ray_cluster
from .paths import REPO_ROOT, RESULTS_ROOT
from .run_folder import CHECKPOINT, HISTORY, RunFolder, timestamp

SPEC = "sweep.json"
DISTRIBUTIONS = ("uniform", "loguniform", "randint", "choice")
RESUMABLE = {"cpus_per_trial", "gpus_per_trial", "max_concurrent", "address"}  # --resume may change
# A trial that fails (its node lost, its process killed) is tried again this often, on any node,
# from its run folder's last checkpoint; a retry waits this long for a process of the lost attempt
# that still holds the run folder.
MAX_FAILURES = 2
LOST_ATTEMPT_WAIT_S = 120


def build_parser(with_experiment=True):
    """The sweep's flags; without the experiment for --resume, where a train.py flag's value must
    not be taken for an experiment's name."""
    parser = argparse.ArgumentParser(prog="python -m repro.sweep", description=__doc__, allow_abbrev=False,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     add_help=with_experiment)
    if with_experiment:
        parser.add_argument("experiment", nargs="?", choices=sorted(experiments.MODULES),
                            help="which experiment (not needed with --resume)")
    parser.add_argument("--seeds", type=cli.seed_int, nargs="+", default=None,
                        help="run every setting once per seed (default: the experiment's --seed)")
    parser.add_argument("--sample", nargs="+", default=[], metavar="NAME=KIND:ARGS",
                        help="draw a train.py flag per setting (see above)")
    parser.add_argument("--num-samples", type=cli.positive_int, default=1,
                        help="settings to draw (default: 1)")
    parser.add_argument("--out-dir", default=None, metavar="DIR",
                        help=f"the sweep's folder (default: {RESULTS_ROOT}/sweeps/<experiment>-<date-time>)")
    parser.add_argument("--resume", default=None, metavar="SWEEP_DIR",
                        help="continue a stopped sweep (its experiment and flags come from "
                             "SWEEP_DIR/sweep.json)")
    parser.add_argument("--address", default=None,
                        help="join a running Ray cluster (HOST:PORT, or auto for the one `ray start` "
                             "recorded on this machine); default: start Ray here")
    parser.add_argument("--cpus-per-trial", type=cli.positive_float, default=1.0,
                        help="CPUs per trial (default: 1)")
    parser.add_argument("--gpus-per-trial", type=cli.nonnegative_float, default=None,
                        help="GPUs per trial, fractions pack trials onto one GPU (default: 0.25 where "
                             "Ray sees a GPU, else 0)")
    parser.add_argument("--max-concurrent", type=cli.positive_int, default=None,
                        help="at most this many trials at once (default: as resources allow)")
    return parser


# ---- the search space ---------------------------------------------------------------------------

def parse_sample(text, base_args):
    """'lr=loguniform:1e-4:1e-2' -> ('lr', 'loguniform', [1e-4, 1e-2]), its form checked."""
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
    return name, kind, values


def extreme_values(kind, values):
    """What a distribution can draw at its ends: LOW and HIGH (randint: HIGH - 1), every choice."""
    if kind == "choice":
        return values
    return [values[0], values[1] - 1] if kind == "randint" else values


class _Refused(Exception):
    pass


def _raise_refused(message):
    raise _Refused(message)


def check_sample_ranges(parser, train_parser_for, train_argv, base, samples, texts):
    """Every value the samples can draw must pass train.py's checks: each range's ends and every
    choice alone, then every combination of them (rules that involve several flags)."""
    probe = train_parser_for()
    probe.error = _raise_refused  # report which sample broke which rule, instead of exiting
    ends = [[(name, value) for value in extreme_values(kind, values)] for name, kind, values in samples]
    checks = [(text, [pair]) for text, pairs in zip(texts, ends) for pair in pairs]
    if len(samples) > 1:
        checks += [(" ".join(texts), list(combination)) for combination in itertools.product(*ends)]
    for text, combination in checks:
        try:
            check_flags(probe, train_argv + flag_argv(probe, base, dict(combination)))
        except _Refused as refused:
            drawn = ", ".join(f"{name}={value}" for name, value in combination)
            parser.error(f"--sample {text}: train.py refuses a value it can draw ({drawn}): {refused}")


def draw_trials(samples, num_samples, seeds):
    """Every trial's values, drawn once (Ray Tune's distributions): num_samples settings, each once
    per seed. Stored in sweep.json, so a resumed sweep runs the same trials."""
    from ray import tune

    def plain(value):  # NumPy scalars -> JSON numbers
        return value.item() if hasattr(value, "item") else value
    domains = {name: tune.choice(values) if kind == "choice" else getattr(tune, kind)(*values)
               for name, kind, values in samples}
    settings = [{name: plain(domain.sample()) for name, domain in domains.items()} for _ in range(num_samples)]
    return [dict(setting, **({"seed": seed} if seed is not None else {}))
            for setting in settings for seed in (seeds or [None])]


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

def run_dir_name(index, values):
    described = ",".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(values.items()))
    return f"{index:03d}_{described}"[:120] if described else f"{index:03d}"


def run_folder_of(sweep_dir, spec, index):
    return RunFolder(pathlib.Path(sweep_dir) / "runs" / run_dir_name(index, spec["trials"][index]))


class _LastLine(io.TextIOBase):
    """Passes text on to a stream and keeps its last non-empty line (argparse's error)."""

    def __init__(self, stream):
        self.stream, self.last = stream, ""

    def write(self, text):
        lines = [line for line in text.splitlines() if line.strip()]
        if lines:
            self.last = lines[-1]
        return self.stream.write(text)

    def flush(self):
        self.stream.flush()

    def fileno(self):
        return self.stream.fileno()


def run_main(experiment, argv, on_epoch):
    """``experiment.main(argv)``; a harness stop (SystemExit) becomes an error carrying its message,
    also when argparse printed it and exited with status 2."""
    stderr = _LastLine(sys.stderr)
    try:
        with contextlib.redirect_stderr(stderr):
            return experiment.main(argv, on_epoch=on_epoch)
    except SystemExit as err:
        message = err.code if isinstance(err.code, str) else \
            stderr.last.split("error: ", 1)[-1] or f"train.py exited with status {err.code}"
        raise RuntimeError(message) from None


def run_trial(config, spec, sweep_dir):
    """A Tune function trainable: the experiment's main() in the trial's run folder, with as many
    threads as Ray gave it CPUs; every epoch's row is reported to Tune with the Ray node and CPUs it
    ran on. A finished run is only reported again; a started one is resumed from its checkpoint
    (also when Tune tries a trial again after its node was lost)."""
    import ray
    import torch
    from ray import tune

    context = ray.get_runtime_context()
    node, cpus = context.get_node_id(), context.get_assigned_resources().get("CPU", 1.0)
    torch.set_num_threads(max(1, int(cpus)))
    report = lambda row: tune.report(dict(row, ray_node_id=node, ray_cpus=cpus))  # noqa: E731
    run = run_folder_of(sweep_dir, spec, config["trial"])
    try:
        with folder_lock.hold(run.path, "run folder", wait_s=LOST_ATTEMPT_WAIT_S):
            train_in(run, spec, spec["trials"][config["trial"]], report)
    except folder_lock.FolderInUse as busy:
        raise RuntimeError(str(busy)) from None


def train_in(run, spec, values, report):
    """Train (or resume, or only report) the trial with ``values`` in its locked run folder."""
    experiment = experiments.get(spec["experiment"])
    ended = run.read_summary()
    if ended is not None:
        if ended.get("status") == "finished":
            for row in run.read_log():
                report(row)
            return
        raise RuntimeError(f"{run.path} {ended.get('status')} in epoch {ended.get('diverged_in_epoch')} "
                           f"(its {HISTORY} says how); start a new sweep with smaller values")
    if run.file(CHECKPOINT).exists():
        argv = ["--resume", str(run.path), "--no-progress"]
    else:
        train_parser = experiment.parser_for(spec["train_argv"])
        base = check_flags(train_parser, spec["train_argv"])
        argv = spec["train_argv"] + flag_argv(train_parser, base, values) + \
            ["--out-dir", str(run.path), "--no-progress"]
    run_main(experiment, argv, report)


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
    samples = [parse_sample(text, base) for text in args.sample]
    check_sample_ranges(parser, lambda: experiment.parser_for(train_argv), train_argv, base, samples,
                        args.sample)
    metric = experiment.task_for(train_argv).metric
    return {"experiment": args.experiment, "train_argv": absolute_paths(train_parser, train_argv),
            "seeds": args.seeds, "samples": samples, "num_samples": args.num_samples,
            "trials": draw_trials(samples, args.num_samples, args.seeds),
            "max_concurrent": args.max_concurrent, "metric": f"valid_{metric.name}",
            "mode": "max" if metric.higher_is_better else "min",
            "resources": {"cpu": args.cpus_per_trial, "gpu": args.gpus_per_trial},
            "created": datetime.datetime.now().isoformat(timespec="seconds")}


def read_spec(parser, sweep_dir):
    try:
        spec = json.loads((sweep_dir / SPEC).read_text())
    except (OSError, ValueError) as err:
        parser.error(f"--resume {sweep_dir}: cannot read {SPEC} there ({err})")
    if "trials" not in spec:
        parser.error(f"--resume {sweep_dir}: its {SPEC} was written by an older repro.sweep (no list "
                     "of trials); start a new sweep")
    return spec


def resumed_spec(parser, args, given, train_argv):
    """The sweep's saved spec with the resources and concurrency given now. Anything else that is
    given must repeat the sweep's value, or the resume is refused, naming each flag."""
    sweep_dir = pathlib.Path(args.resume).resolve()
    spec = read_spec(parser, sweep_dir)
    saved = {"num_samples": spec["num_samples"], "seeds": spec["seeds"], "out_dir": str(sweep_dir),
             "sample": [f"{name}={kind}:{(',' if kind == 'choice' else ':').join(map(str, values))}"
                        for name, kind, values in spec["samples"]]}
    now = dict(vars(args), out_dir=args.out_dir and str(pathlib.Path(args.out_dir).resolve()))
    changed = [f"{cli.flag_for(parser, name)} {now[name]} (sweep: {saved[name]})"
               for name in sorted(given - RESUMABLE - {"resume"}) if now[name] != saved[name]]
    if train_argv:
        changed.append(f"the experiment and train.py flags {' '.join(train_argv)} (sweep: "
                       f"{' '.join([spec['experiment']] + spec['train_argv'])})")
    if changed:
        parser.error(f"--resume {args.resume} continues the sweep as it was drawn; these cannot change: "
                     + "; ".join(changed) + ". Only --cpus-per-trial, --gpus-per-trial, --max-concurrent "
                     "and --address may; start a new sweep to change the rest.")
    for name, key in (("cpus_per_trial", "cpu"), ("gpus_per_trial", "gpu")):
        if name in given:
            spec["resources"][key] = getattr(args, name)
    if "max_concurrent" in given:
        spec["max_concurrent"] = args.max_concurrent
    return sweep_dir, spec


def check_resources(spec, largest, address):
    """A trial needs its CPUs and GPUs on one node: more than the largest node has would leave it
    pending forever."""
    if spec["resources"]["gpu"] is None:  # decided once, on the first start
        spec["resources"]["gpu"] = 0.25 if largest["GPU"] > 0 else 0
    where = "this Ray cluster's largest node" if address else "this machine"
    for key, flag, kind in (("cpu", "--cpus-per-trial", "CPU"), ("gpu", "--gpus-per-trial", "GPU")):
        wanted = spec["resources"][key]
        if wanted > largest[kind]:
            raise SystemExit(f"{flag} {wanted:g}: {where} has {largest[kind]:g} {kind}s, so no trial could "
                             f"ever start; pass {flag} {largest[kind]:g} or less"
                             + (" (0 runs on CPUs)" if kind == "GPU" else ""))


class _NoTunerRestoreAdvice(logging.Filter):
    """After Ctrl-C Tune advises Tuner.restore; a sweep continues with --resume (printed below)."""

    def filter(self, record):
        return "Tuner.restore" not in record.getMessage()


def fit(spec, sweep_dir):
    """One Tune run over the sweep's trials (a start or a resume); Tune's own files go to
    <sweep>/tune/<date-time>/."""
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    logging.getLogger("ray.tune.tune").addFilter(_NoTunerRestoreAdvice())
    trainable = tune.with_resources(tune.with_parameters(run_trial, spec=spec, sweep_dir=str(sweep_dir)),
                                    spec["resources"])
    tuner = tune.Tuner(
        trainable, param_space={"trial": tune.grid_search(list(range(len(spec["trials"]))))},
        tune_config=tune.TuneConfig(metric=spec["metric"], mode=spec["mode"],
                                    max_concurrent_trials=spec["max_concurrent"]),
        run_config=tune.RunConfig(name=timestamp(), storage_path=str(sweep_dir / "tune"),
                                  failure_config=tune.FailureConfig(max_failures=MAX_FAILURES), verbose=1,
                                  callbacks=[JsonLoggerCallback(), CSVLoggerCallback()]))
    return tuner.fit()


def error_line(error):
    """The last line of a trial's error (Ray's text holds the remote traceback first)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def outcome(spec, sweep_dir, results):
    """Print what the run folders say (finished, failed with their error, not finished) and the
    command that continues the sweep; True when every trial finished."""
    errors = {result.config["trial"]: error_line(result.error) for result in results if result.error}
    finished, failed = [], []
    for index in range(len(spec["trials"])):
        run = run_folder_of(sweep_dir, spec, index)
        status = (run.read_summary() or {}).get("status")
        if status == "finished":
            finished.append(index)
        elif index in errors:
            failed.append(f"\n  failed: {run.path.relative_to(sweep_dir)}: {errors[index]}")
    rest = len(spec["trials"]) - len(finished) - len(failed)
    print(f"\nsweep {sweep_dir}: {len(finished)} of {len(spec['trials'])} trials finished, {len(failed)} "
          f"failed, {rest} not finished (interrupted or not started)" + "".join(failed))
    if len(finished) < len(spec["trials"]):
        print(f"continue it (failed and unfinished trials run again from their last checkpoints): "
              f"python -m repro.sweep --resume {sweep_dir}")
    print(f"results: python -m repro.report {sweep_dir}    curves: tensorboard --logdir {sweep_dir / 'runs'}")
    return len(finished) == len(spec["trials"])


def trial_environment():
    """Environment of the trials on every node: this repository and PYTHONPATH importable, the
    working directory kept. The run folders stay the only TensorBoard logs (Ray's trial folders
    get JSON and CSV only)."""
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    path = [str(REPO_ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return {"PYTHONPATH": os.pathsep.join(path), "RAY_CHDIR_TO_TRIAL_DIR": "0"}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(with_experiment=False)
    args, train_argv = parser.parse_known_args(argv)
    if not args.resume:
        parser = build_parser()
        args, train_argv = parser.parse_known_args(argv)
    given = cli.given_flags(parser, argv)
    if args.address is not None:
        ray_cluster.use_token_if_available()  # before Ray is imported
    if args.resume:
        sweep_dir, spec = resumed_spec(parser, args, given, train_argv)
    else:
        if args.experiment is None:
            parser.error("name the experiment (or --resume SWEEP_DIR)")
        spec = new_spec(parser, args, train_argv)
        sweep_dir = pathlib.Path(args.out_dir or RESULTS_ROOT / "sweeps" / f"{args.experiment}-{timestamp()}").resolve()

    created = not sweep_dir.exists()
    with folder_lock.hold(sweep_dir, "sweep folder"):
        try:
            if not args.resume and (sweep_dir / SPEC).exists():
                parser.error(f"--out-dir {sweep_dir} already holds a sweep; continue it with --resume {sweep_dir}")
            largest = ray_cluster.start(args.address, trial_environment())
            check_resources(spec, largest, args.address)
        except SystemExit:
            if created:  # nothing of this sweep was written: leave no empty folder behind
                shutil.rmtree(sweep_dir, ignore_errors=True)
            raise
        (sweep_dir / SPEC).write_text(json.dumps(spec, indent=2))
        results = fit(spec, sweep_dir)
        if not outcome(spec, sweep_dir, results):
            raise SystemExit(1)
    return results


if __name__ == "__main__":
    main()
