"""What an experiment is, declared once in its ``train.py`` as ``EXPERIMENT = Experiment(...)``: its
tasks (each with the metric it is scored by, the paper defaults that differ between tasks and its
reference values), its parser, its learning-rate drops and its ``main``. The train scripts, sweeps,
the report and the tests read the declaration; nothing in ``repro/`` knows an experiment by name.

An experiment with several tasks (healthcare: RR and HR) names the flag that chooses one
(``task_flag``, e.g. "--name"); each Task's ``choice`` is that flag's value for it.
"""
import argparse
import dataclasses
import sys
from typing import Callable

from . import cli, references, training
from .metrics import Metric


@dataclasses.dataclass(frozen=True)
class Task:
    """One result of the paper: its name (run folders and the report are keyed by it), its metric,
    the value of the experiment's task flag that selects it, and its own paper defaults."""
    name: str
    metric: Metric
    choice: str | None = None
    defaults: dict = dataclasses.field(default_factory=dict)

    @property
    def reference(self):
        """The paper's and the 2021 repository's values (repro/reference_results.json), or None."""
        return references.of(self.name)


def _no_lr_drops(args):
    return []


def _as_parsed(args):
    return args


@dataclasses.dataclass(frozen=True)
class Experiment:
    name: str                         # the folder of its train.py, and its key in repro.experiments
    tasks: tuple                      # Task, ...; the first is the default
    build_parser: Callable            # () -> ArgumentParser, defaults = the paper's (shared by the tasks)
    main: Callable                    # main(argv=None, on_epoch=None) -> the run's summary
    lr_drops: Callable = _no_lr_drops         # args -> epochs after which lr is divided by 10
    derive_defaults: Callable = _as_parsed    # args -> args, defaults that follow from other flags
    task_flag: str | None = None      # the flag that chooses a task when there are several

    def task(self, name):
        for task in self.tasks:
            if task.name == name:
                return task
        raise SystemExit(f"{self.name} has no task {name!r}; its tasks: "
                         + ", ".join(t.name for t in self.tasks))

    def task_for(self, argv):
        """The task ``argv`` chooses (the first task when the flag is absent or not a choice; the
        full parser then reports a bad choice)."""
        if self.task_flag is None:
            return self.tasks[0]
        chooser = argparse.ArgumentParser(add_help=False)
        chooser.add_argument(self.task_flag, dest="choice", default=None)
        choice = chooser.parse_known_args(list(argv))[0].choice
        return next((t for t in self.tasks if t.choice == choice), self.tasks[0])

    def parser(self, task):
        """The train.py parser with ``task``'s paper defaults (``--help`` shows them)."""
        parser = self.build_parser()
        if self.task_flag is not None:
            parser.set_defaults(**{_dest_of(parser, self.task_flag): task.choice})
        parser.set_defaults(**task.defaults)
        return parser

    def parser_for(self, argv):
        return self.parser(self.task_for(argv))

    def parse_args(self, argv=None):
        """(parser, args) for ``argv``, checked, with no side effects (no folder is made)."""
        argv = list(sys.argv[1:] if argv is None else argv)
        task = self.task_for(argv)
        parser = self.parser(task)
        return parser, self.derive_defaults(cli.parse_args(parser, argv, experiment=self.name,
                                                           task=task.name))

    def start_run(self, argv=None):
        """The arguments of a run that starts now: ``argv`` parsed and its run folder made."""
        parser, args = self.parse_args(argv)
        return cli.claim_run_folder(parser, args)

    def fit(self, args, model, train_batches, loss_fn, evaluate, on_epoch=None, **options):
        """``training.fit`` for a run of this experiment started by ``start_run``: the task that
        ``args`` chose and the lr drops its flags give."""
        return training.fit(args, model, train_batches, loss_fn, evaluate, self.task(args.task),
                            lr_milestones=self.lr_drops(args), on_epoch=on_epoch, **options)

    def paper_defaults(self, task):
        """The arguments a run of ``task`` gets with no flags: the paper's set-up."""
        return self.derive_defaults(self.parser(task).parse_args([]))


def _dest_of(parser, flag):
    for action in parser._actions:
        if flag in action.option_strings:
            return action.dest
    raise ValueError(f"the parser has no {flag}")
