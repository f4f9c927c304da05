"""The experiments by name: the one table of names and modules. Each module declares the rest in its
``EXPERIMENT`` (a ``repro.experiment.Experiment``: tasks, metrics, parser, paper defaults, lr drops,
main); sweeps, the report and the tests reach the experiments only through this table."""
import importlib

MODULES = {"psMNIST": "psMNIST.train", "noisy_cifar": "noisy_cifar.train",
           "eigenworms": "eigenworms.train", "healthcare": "healthcare.train", "imdb": "imdb.train"}
# what a run's flags never change about its result (where it runs, where files go)
NOT_A_SETTING = {"seed", "device", "out_dir", "resume", "no_progress", "data_dir", "cache_dir",
                 "download", "experiment", "task"}


def train_module(name):
    if name not in MODULES:
        raise SystemExit(f"unknown experiment {name!r}; one of {', '.join(MODULES)}")
    return importlib.import_module(MODULES[name])


def get(name):
    """The declared Experiment called ``name``."""
    return train_module(name).EXPERIMENT


def find_task(task_name):
    """(Experiment, Task) of a task name, e.g. 'healthcare_RR', searching every experiment."""
    for name in MODULES:
        experiment = get(name)
        if task_name in {t.name for t in experiment.tasks}:
            return experiment, experiment.task(task_name)
    raise SystemExit(f"no experiment has a task {task_name!r}")
