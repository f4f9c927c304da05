"""The results over seeds and sweeps, beside the paper: a table and validation curves.

    python -m repro.report results/                      # every run folder under results/
    python -m repro.report results/sweeps/psMNIST-... --figures /tmp/figs --markdown /tmp/report.md

Reads every run folder (a folder with args.json) under the given folders, single runs and sweep
trials alike, and groups them by task and setting (the flags that differ from the paper's set-up;
seed, device and paths do not count). Per group, over the finished runs, from each run's
summary.json (the test value at the epoch of its best validation value, as the run recorded it):
the number of runs, mean +- std (sample std) beside the paper's table value (mean +- std where
confirmed) with a verdict, and our best run beside the best run of the authors' 2021 repository
(repro/reference_results.json holds both reference values and their sources; repro/references.py
the verdict's rules: "within the paper's spread" when our mean lies within the paper's mean +- 2 std
with 3 or more runs, "too few runs" below 3, "no paper std" when the paper's std is not confirmed,
else "below"/"above the paper's spread"; the verdict compares the numbers whatever the setting).
Unfinished and diverged runs are listed, never averaged. Figures: <figures>/curves-<task>.png,
validation value per epoch (mean and min-max band over the finished runs of a setting, unfinished
runs dashed) with the authors' published 2021 curve.
"""
import argparse
import collections
import dataclasses
import json
import pathlib
import statistics
import sys

from . import authors_logs, cli, experiments, references
from .paths import REPO_ROOT
from .run_folder import ARGS, HISTORY, LOG, SUMMARY, RunFolder, upgrade_names

MAX_SETTINGS_PER_FIGURE = 5


@dataclasses.dataclass
class Run:
    path: pathlib.Path
    args: dict
    log: list
    summary: dict | None  # summary.json: the result where the run finished
    status: str           # "finished", "diverged" or "unfinished"
    task: object          # its repro.experiment.Task
    setting: str
    devices: tuple        # where it trained (from history.jsonl), e.g. ("cpu",)

    @property
    def epochs_done(self):
        return len(self.log)


def _read_json(path, default=None):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return default


def run_status(args, log, summary):
    if summary and summary.get("status") == "diverged":
        return "diverged"
    if summary and summary.get("status") == "finished" and len(log) == args.get("epochs"):
        return "finished"
    return "unfinished"


def devices_of(folder):
    """Device types a run trained on, from the start/resume events of its history.jsonl."""
    try:
        events = [json.loads(line) for line in (folder / HISTORY).read_text().splitlines()]
    except (OSError, ValueError):
        return ()
    return tuple(sorted({e["device"].split(":")[0] for e in events if "device" in e}))


def describe_setting(args, defaults):
    """'paper set-up', or the flags that differ from it, e.g. 'epochs=3, nhid=32'."""
    changed = [f"{key}={value}" for key, value in sorted(args.items())
               if key not in experiments.NOT_A_SETTING and key in defaults and value != defaults[key]]
    return ", ".join(changed) or "paper set-up"


def declared_task(args):
    """(Experiment, Task) a run's saved arguments name, or None when they name none."""
    if not isinstance(args, dict) or args.get("experiment") not in experiments.MODULES:
        return None
    experiment = experiments.get(args["experiment"])
    task = next((t for t in experiment.tasks if t.name == args.get("task")), None)
    return None if task is None else (experiment, task)


def find_runs(folders):
    runs, known = [], {}  # task name -> (renamed flags, the paper's arguments)
    for folder in folders:
        for args_file in sorted(pathlib.Path(folder).rglob(ARGS)):
            args = _read_json(args_file)
            declared = declared_task(args)
            if declared is None:
                print(f"skipped {args_file.parent}: not a run folder of these experiments", file=sys.stderr)
                continue
            experiment, task = declared
            if task.name not in known:
                known[task.name] = (cli.renamed_dests(experiment.parser(task)),
                                    vars(experiment.paper_defaults(task)))
            renamed, defaults = known[task.name]
            args = upgrade_names(args, renamed)
            log = _read_json(args_file.with_name(LOG), [])
            summary = RunFolder(args_file.parent).read_summary()
            runs.append(Run(args_file.parent, args, log, summary, run_status(args, log, summary), task,
                            describe_setting(args, defaults), devices_of(args_file.parent)))
    return runs


def result_of(run):
    """The test value at the best validation epoch, as the run's summary.json recorded it."""
    return (run.summary or {}).get(f"test_{run.task.metric.name}")


def summarise(runs):
    """One table row per (task, setting)."""
    groups = collections.defaultdict(list)
    for run in runs:
        groups[run.task.name, run.setting].append(run)
    rows = []
    for (_, setting), members in sorted(groups.items()):
        task = members[0].task
        metric, reference = task.metric, task.reference
        counted = [r for r in members if r.status == "finished" and result_of(r) is not None]
        values = [result_of(r) for r in counted]
        others = [f"{r.status} ({r.epochs_done}/{r.args.get('epochs')} epochs)" if r.status != "finished"
                  else f"finished, no test value in its {SUMMARY}" for r in members if r not in counted]
        mean = statistics.fmean(values) if values else None
        paper = None if reference is None else reference.paper_mean
        rows.append({"task": task.name, "setting": setting, "metric": metric, "reference": reference,
                     "runs": len(values), "mean": mean,
                     "std": statistics.stdev(values) if len(values) > 1 else None,
                     "min": min(values, default=None), "max": max(values, default=None),
                     "best": metric.best(values) if values else None, "paper": paper,
                     "difference": None if mean is None or paper is None else mean - paper,
                     "verdict": references.verdict(mean, len(values), reference), "not_counted": others})
    return rows


def markdown_table(rows):
    lines = ["| task | setting | runs | ours: mean ± std | paper: mean ± std | verdict | mean − paper "
             "| ours: best run | 2021 repository: best run | not counted |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        m, reference = r["metric"], r["reference"]
        mean = "-" if r["mean"] is None else m.show(r["mean"]) + ("" if r["std"] is None else f" ± {r['std']:{m.fmt}}")
        diff = "-" if r["difference"] is None else f"{r['difference']:+{m.fmt}}"
        repository = "-" if reference is None else references.repository_text(reference, m)
        lines.append(f"| {r['task']} ({m.name}) | {r['setting']} | {r['runs']} | {mean} | "
                     f"{references.paper_text(reference, m)} | {r['verdict']} | {diff} | {m.show(r['best'])} | "
                     f"{repository} | {'; '.join(r['not_counted']) or '-'} |")
    return "\n".join(lines) + "\n"


def plot_curves(task, runs, path):
    """Validation value per epoch for ``task``: our settings and the authors' published curve."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = task.metric
    key = f"valid_{metric.name}"
    by_setting = collections.defaultdict(list)
    for run in runs:
        by_setting[run.setting].append(run)
    settings = sorted(by_setting, key=lambda s: -len(by_setting[s]))[:MAX_SETTINGS_PER_FIGURE]
    fig, ax = plt.subplots(figsize=(8, 4.8))
    last_epoch = 1
    for i, setting in enumerate(settings):
        color = f"C{i}"
        finished = [r for r in by_setting[setting] if r.status == "finished"]
        if finished:
            per_epoch = collections.defaultdict(list)
            for run in finished:
                for row in run.log:
                    per_epoch[row["epoch"]].append(row[key])
            epochs = sorted(per_epoch)
            devices = "+".join(sorted({d for r in finished for d in r.devices})) or "?"
            ax.plot(epochs, [statistics.fmean(per_epoch[e]) for e in epochs], color=color,
                    label=f"ours: {setting} ({len(finished)} runs on {devices}, mean, min-max band)")
            ax.fill_between(epochs, [min(per_epoch[e]) for e in epochs], [max(per_epoch[e]) for e in epochs],
                            color=color, alpha=0.25)
            last_epoch = max(last_epoch, epochs[-1])
        for j, run in enumerate(r for r in by_setting[setting] if r.status != "finished"):
            ax.plot([row["epoch"] for row in run.log], [row[key] for row in run.log], color=color, ls="--",
                    lw=1, label=f"ours: {setting}, {run.status}" if j == 0 else None)
    published = authors_logs.load()["logs"].get(task.name)
    if published:
        ax.plot(published["epochs"], published["valid"], color="black", lw=1, marker=".", ms=3,
                label=authors_logs.citation(task.name))
        if published["epochs"][-1] > 10 * last_epoch:
            ax.set_xscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"validation {metric.name}{' [%]' if metric.unit == '%' else ''}")
    ax.set_title(f"{task.name}: validation {metric.name} per epoch\n"
                 f"(test: {references.describe(task.reference, metric)})", fontsize=9)
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m repro.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", help="folders holding run folders (searched recursively)")
    parser.add_argument("--figures", default=str(REPO_ROOT / "imgs"), help="where curves-<task>.png go")
    parser.add_argument("--markdown", default=None,
                        help="where the table is written (default: report.md in the first folder)")
    args = parser.parse_args(argv)
    missing = [f for f in args.folders if not pathlib.Path(f).is_dir()]
    if missing:
        parser.error(f"not a folder: {', '.join(missing)}")
    runs = find_runs(args.folders)
    if not runs:
        parser.error(f"no run folders (with {ARGS}) under {', '.join(args.folders)}")
    rows = summarise(runs)
    table = markdown_table(rows)
    print(table)
    markdown = pathlib.Path(args.markdown or pathlib.Path(args.folders[0]) / "report.md")
    markdown.write_text("# Results\n\nTest value at the epoch of the best validation value (each run's "
                        f"{SUMMARY}); std is the sample standard deviation over finished runs. The "
                        "reference values and their sources: repro/reference_results.json; the verdict's "
                        "rules: repro/references.py.\n\n" + table)
    tasks = {r.task.name: r.task for r in runs}
    figures = [plot_curves(task, [r for r in runs if r.task.name == name], pathlib.Path(args.figures) / f"curves-{name}.png")
               for name, task in sorted(tasks.items())]
    print(f"wrote {markdown} and " + ", ".join(str(f) for f in figures))
    return rows


if __name__ == "__main__":
    main()
