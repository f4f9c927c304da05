"""The five experiments by name: where each one's train.py lives, how its runs are told apart
(healthcare has two tasks) and which validation value a sweep optimises. Sweeps and the report
reach the experiments only through this table. The experiment folders are packages at the
repository's root: they are imported from there (where ``repro`` knows the repository to be), so
``python -m repro.sweep`` and ``python -m repro.report`` work from any directory."""
import importlib
import importlib.machinery
import importlib.util
import sys

from .paths import REPO_ROOT

MODULES = {"psMNIST": "psMNIST.train", "noisy_cifar": "noisy_cifar.train",
           "eigenworms": "eigenworms.train", "healthcare": "healthcare.train", "imdb": "imdb.train"}
# what a run's flags never change about its result (where it runs, where files go)
NOT_A_SETTING = {"seed", "device", "out_dir", "resume", "no_progress", "data_dir", "cache_dir",
                 "download", "experiment", "task"}


def experiment_of(task):
    """'healthcare_RR' -> 'healthcare'; every other task is its experiment's name."""
    return "healthcare" if task.startswith("healthcare_") else task


def task_of(experiment, args):
    """The task a run of ``experiment`` with ``args`` belongs to (healthcare: by --name)."""
    return f"healthcare_{args.name}" if experiment == "healthcare" else experiment


def train_module(experiment):
    if experiment not in MODULES:
        raise SystemExit(f"unknown experiment {experiment!r}; one of {', '.join(MODULES)}")
    _import_from_repository(MODULES[experiment].split(".")[0])
    return importlib.import_module(MODULES[experiment])


def _import_from_repository(package):
    """Import the experiment folder ``package`` from the repository root unless it is imported
    already; nothing else is added to the import path."""
    if package in sys.modules:
        return
    spec = importlib.machinery.PathFinder.find_spec(package, [str(REPO_ROOT)])
    if spec is None:
        raise SystemExit(f"the experiment folder {REPO_ROOT / package} is missing: repro runs from a "
                         "checkout of this repository (bash setup.sh installs it in editable mode)")
    module = importlib.util.module_from_spec(spec)
    sys.modules[package] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[package]
        raise


def parser_for(experiment, argv=()):
    """The experiment's train.py parser (healthcare's defaults depend on --name in argv)."""
    module = train_module(experiment)
    if experiment == "healthcare":
        return module.build_parser(module.task_name(list(argv)))
    return module.build_parser()


def paper_defaults(task):
    """The arguments a train.py run of ``task`` gets with no flags (the paper's set-up)."""
    experiment = experiment_of(task)
    module = train_module(experiment)
    argv = ["--name", task.split("_", 1)[1]] if experiment == "healthcare" else []
    args = parser_for(experiment, argv).parse_args(argv)
    derive = getattr(module, "derive_defaults", None)
    return derive(args) if derive else args


def metric(task):
    """The Metric (name, direction, the paper's test value) that ``task`` is scored and selected by."""
    module = train_module(experiment_of(task))
    if experiment_of(task) == "healthcare":
        return module.metric_of(task.split("_", 1)[1])
    return module.METRIC
