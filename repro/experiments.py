"""The experiments by name: the one table of names and modules. Each module declares the rest in its
``EXPERIMENT`` (a ``repro.experiment.Experiment``: tasks, metrics, parser, paper defaults, lr drops,
main); sweeps, the report and the tests reach the experiments only through this table. The
experiment folders are packages at the repository's root: they are imported from there (where
``repro`` knows the repository to be), so ``python -m repro.sweep`` and ``python -m repro.report``
work from any directory."""
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


def train_module(name):
    if name not in MODULES:
        raise SystemExit(f"unknown experiment {name!r}; one of {', '.join(MODULES)}")
    _import_from_repository(MODULES[name].split(".")[0])
    return importlib.import_module(MODULES[name])


def _import_from_repository(package):
    """Import the experiment folder ``package`` from the repository root unless it is imported
    already (or importable from the path, as an experiment kept elsewhere); nothing else is added
    to the import path."""
    if package in sys.modules:
        return
    spec = importlib.machinery.PathFinder.find_spec(package, [str(REPO_ROOT)])
    if spec is None:
        if importlib.util.find_spec(package) is not None:
            return
        raise SystemExit(f"the experiment folder {REPO_ROOT / package} is missing: repro runs from a "
                         "checkout of this repository (bash setup.sh installs it in editable mode)")
    module = importlib.util.module_from_spec(spec)
    sys.modules[package] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[package]
        raise


def get(name):
    """The declared Experiment called ``name``."""
    return train_module(name).EXPERIMENT


def find_task(task_name):
    """(Experiment, Task) of a task name, e.g. 'healthcare_RR', searching every experiment."""
    for name in MODULES:
        experiment = get(name)
        task = next((t for t in experiment.tasks if t.name == task_name), None)
        if task is not None:
            return experiment, task
    raise SystemExit(f"no experiment has a task {task_name!r}")
