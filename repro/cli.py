"""Command-line flags every ``train.py`` shares, checked when they are parsed, and the rules of
``--resume``.

Parsing (``parse_args``) has no side effects: every flag is validated by argparse itself (a one-line
``error: argument --dt: ...`` and exit 2) and nothing is written. The run folder is made when the
run starts (``claim_run_folder``), before any data loads.

Resuming: a run keeps the arguments it was started with (its ``args.json``). Only ``--epochs`` (to
extend or shorten what is left), ``--device`` and ``--no-progress`` may change; any other flag given
with ``--resume`` must repeat the saved value or the run is refused, naming the flags. Whether a flag
was given is read from argparse (abbreviations and ``--flag=value`` included), never from argv. A
flag renamed since a run was saved keeps its old spelling as an alias (e.g. ``--reduce-point`` for
``--lr-drop-epoch``), and the run's saved value under the old name is read as the new one.
"""
import argparse
import math
import pathlib
import sys

import torch

from .paths import RESULTS_ROOT
from .run_folder import RunFolder

RESUMABLE = {"epochs", "device", "no_progress"}  # what may change when a run is resumed
NOT_ARGUMENTS = {"resume", "out_dir", "help"}     # where the run is, not how it trains
MAX_SEED = 2**32 - 1                              # NumPy's limit; torch and Python accept it too


# ---- argparse types: each raises ArgumentTypeError with what was expected -----------------------

def _number(cast, text):
    try:
        return cast(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def positive_int(text):
    value = _number(int, text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {value}")
    return value


def seed_int(text):
    value = _number(int, text)
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be in 0 .. {MAX_SEED}, got {value}")
    return value


def positive_float(text):
    value = _number(float, text)
    if not (0 < value < math.inf):  # also rejects NaN
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def nonnegative_float(text):
    value = _number(float, text)
    if not (0 <= value < math.inf):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def probability(text):
    value = _number(float, text)
    if not (0 <= value < 1):
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def device_name(text):
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(f"unknown device {text!r}; use cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise argparse.ArgumentTypeError(f"the recurrence runs on cpu or cuda, got {text!r}")
    return text


# ---- the shared flags ---------------------------------------------------------------------------

class _ShowDefaults(argparse.RawDescriptionHelpFormatter):
    """Appends "(default: X)" to every flag's help unless the help already says its default."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default in (None, argparse.SUPPRESS) or action.nargs == 0:
            return text
        return text + " (default: %(default)s)"


def experiment_parser(doc):
    """An ArgumentParser whose help starts with the script's docstring and shows every default."""
    return argparse.ArgumentParser(description=doc, formatter_class=_ShowDefaults)


def add_model_args(parser, *, nhid, nlayers, dt, alpha, dropout, lr, batch):
    """The UnICORNN hyperparameters every experiment exposes, defaults = that experiment's paper values."""
    group = parser.add_argument_group("paper hyperparameters (defaults = the paper's)")
    group.add_argument("--nhid", type=positive_int, default=nhid, help="units per layer")
    group.add_argument("--nlayers", type=positive_int, default=nlayers, help="layers")
    group.add_argument("--dt", type=positive_float, nargs="+", default=dt if isinstance(dt, list) else [dt],
                       help="time step: one value, or one per layer")
    group.add_argument("--alpha", type=nonnegative_float, default=alpha, help="alpha")
    group.add_argument("--dropout", type=probability, default=dropout, help="dropout over time")
    group.add_argument("--lr", type=positive_float, default=lr, help="Adam learning rate")
    group.add_argument("--batch", type=positive_int, default=batch, help="training batch")
    return group


def add_data_args(parser, *, data_dir, what, download=True):
    """--data-dir (default under the repository's data/) and, when the data can be fetched,
    --no-download."""
    parser.add_argument("--data-dir", default=str(data_dir), help=what)
    if download:
        parser.add_argument("--no-download", dest="download", action="store_false",
                            help="never download; fail with instructions if the data is missing")


def add_lr_drop_arg(parser, *, default, aliases=()):
    """--lr-drop-epoch: the epoch after which the learning rate is divided by 10 (once)."""
    parser.add_argument("--lr-drop-epoch", *aliases, dest="lr_drop_epoch", type=positive_int,
                        default=default, help="divide lr by 10 after this epoch (paper)")


def add_training_args(parser, *, epochs, epochs_help="training epochs (paper)"):
    """Flags every train.py shares; the experiment adds its paper hyperparameters itself."""
    group = parser.add_argument_group("run")
    group.add_argument("--epochs", type=positive_int, default=epochs, help=epochs_help)
    group.add_argument("--device", type=device_name, default=None,
                       help="cpu, cuda or cuda:N (default: cuda if available, else cpu)")
    group.add_argument("--seed", type=seed_int, default=1234,
                       help="seed for weights, dropout and batch order")
    group.add_argument("--max-train-batches", type=positive_int, default=None, metavar="N",
                       help="stop each epoch after N batches (smoke runs; default: whole epoch)")
    group.add_argument("--out-dir", default=None, metavar="DIR",
                       help=f"run folder (default: a new {RESULTS_ROOT}/<task>/<date-time>)")
    group.add_argument("--resume", default=None, metavar="RUN_DIR",
                       help="continue an interrupted run from its folder, with its saved arguments "
                            "(only --epochs, --device and --no-progress may change)")
    group.add_argument("--no-progress", action="store_true",
                       help="no progress bars (training and data preparation)")
    return group


# ---- parsing ------------------------------------------------------------------------------------

_NOT_GIVEN = object()


def parse_with_given(parser, argv):
    """(args, names of the flags given on the command line), as argparse understood them."""
    return parser.parse_args(argv), given_flags(parser, argv)


def given_flags(parser, argv):
    """Names of the options given in argv (abbreviations and --flag=value included; flags the
    parser does not know are left out)."""
    options = {a.dest for a in parser._actions if a.option_strings and a.dest != argparse.SUPPRESS}
    marker = argparse.Namespace(**dict.fromkeys(options, _NOT_GIVEN))
    parsed = vars(parser.parse_known_args(argv, marker)[0])
    return {name for name in options if parsed[name] is not _NOT_GIVEN}


def flag_for(parser, dest):
    """The first long option string of ``dest`` (e.g. 'lr_drop_epoch' -> '--lr-drop-epoch')."""
    for action in parser._actions:
        if action.dest == dest and action.option_strings:
            return next((o for o in action.option_strings if o.startswith("--")), action.option_strings[0])
    return "--" + dest.replace("_", "-")


def check_cross_flag_rules(parser, args):
    """Rules that involve several flags, or the machine (CUDA present)."""
    if hasattr(args, "dt") and hasattr(args, "nlayers") and len(args.dt) not in (1, args.nlayers):
        parser.error(f"argument --dt: give one value or one per layer ({args.nlayers}), "
                     f"got {len(args.dt)}: {args.dt}")
    if args.device is not None and args.device.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = torch.device(args.device).index or 0
        if index >= count:
            parser.error(f"argument --device: {args.device} is not available here "
                         f"({count} CUDA devices); use --device cpu")


def renamed_dests(parser):
    """{old name: today's dest} for flags that keep an old spelling as an alias, e.g.
    {'reduce_point': 'lr_drop_epoch'} for --lr-drop-epoch with the alias --reduce-point."""
    return {option.lstrip("-").replace("-", "_"): action.dest for action in parser._actions
            for option in action.option_strings
            if option.startswith("--") and option.lstrip("-").replace("-", "_") != action.dest}


def parse_args(parser, argv, *, experiment, task):
    """Parse and validate argv, without side effects. A new run's out_dir stays None unless given
    (``claim_run_folder`` makes it); with --resume, the run's saved arguments come back, with the
    changes --resume allows."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args, given = parse_with_given(parser, argv)
    if args.resume is None:
        check_cross_flag_rules(parser, args)
        args.experiment, args.task = experiment, task
        return args
    return _resumed_args(parser, args, given, experiment, task)


def claim_run_folder(parser, args):
    """Make the run's folder when the run starts and check it takes files: a new run gets a new
    unique folder (date-time to the microsecond, never reused) unless --out-dir names one, which
    must not hold a run yet; a resumed run's folder must be writable. Returns args with out_dir set."""
    if args.resume is not None:
        try:
            RunFolder(args.out_dir).make_writable_folder()
        except OSError as err:
            parser.error(f"--resume {args.resume}: cannot write there: {err}")
        return args
    try:
        if args.out_dir is None:
            args.out_dir = str(RunFolder.create_unique(RESULTS_ROOT / args.task).path)
            return args
        folder = RunFolder(args.out_dir)
        held = folder.describe_run()
        if held:
            parser.error(f"argument --out-dir: {args.out_dir} already holds a run ({held}). Pass "
                         f"--resume {args.out_dir} to continue it, or choose another --out-dir.")
        folder.make_writable_folder()
        args.out_dir = str(folder.path)
        return args
    except OSError as err:
        parser.error(f"argument --out-dir: cannot write the run folder: {err}")


def _resumed_args(parser, args, given, experiment, task):
    run_dir = pathlib.Path(args.resume)
    if "out_dir" in given and pathlib.Path(args.out_dir).resolve() != run_dir.resolve():
        parser.error(f"--out-dir {args.out_dir} and --resume {args.resume} name different folders; "
                     "a resumed run stays in its folder (drop --out-dir)")
    folder = RunFolder(run_dir)
    saved = folder.read_args(required=[a.dest for a in parser._actions
                                       if a.dest != argparse.SUPPRESS and a.dest not in NOT_ARGUMENTS],
                             renamed=renamed_dests(parser))
    if saved.get("experiment") != experiment:
        parser.error(f"--resume {run_dir}: that is a {saved.get('experiment')!r} run; resume it with "
                     f"{saved.get('experiment')}/train.py, not the {experiment} script")
    changed = [name for name in sorted(given - RESUMABLE - NOT_ARGUMENTS)
               if getattr(args, name) != saved[name]]
    if changed:
        parser.error("a resumed run keeps its arguments; these differ from the run's: " + ", ".join(
            f"{flag_for(parser, n)} {getattr(args, n)} (run: {saved[n]})" for n in changed)
            + ". Start a new run (--out-dir) to change them; with --resume only --epochs, "
              "--device and --no-progress may change.")
    resumed = argparse.Namespace(**saved)
    for name in RESUMABLE & given:
        setattr(resumed, name, getattr(args, name))
    resumed.resume = resumed.out_dir = str(run_dir)
    resumed.experiment, resumed.task = experiment, saved.get("task", task)
    check_cross_flag_rules(parser, resumed)
    return resumed
