"""The results over seeds and sweeps, beside the paper: a table and validation curves.

    python -m repro.report results/                      # every run folder under results/
    python -m repro.report results/sweeps/psMNIST-... --figures /tmp/figs --markdown /tmp/report.md

Reads every run folder (a folder with args.json) under the given folders, single runs and sweep
trials alike, each once however the folders overlap, and groups them by task and setting (the flags
that differ from the paper's set-up; seed, device and paths do not count). Per group, over the finished runs, from each run's
summary.json (the test value at the epoch of its best validation value, as the run recorded it):
the number of runs, mean +- std (sample std) beside the paper's table value (mean +- std where
confirmed) with a verdict, and our best run beside the best run of the authors' 2021 repository
(repro/reference_results.json holds both reference values and their sources; repro/references.py
the verdict's rules: "within the paper's spread" when our mean lies within the paper's mean +- 2 std
with 3 or more runs, "too few runs" below 3, "no paper std" when the paper's std is not confirmed,
else "below"/"above the paper's spread"; the verdict compares the numbers whatever the setting).
Unfinished and diverged runs are listed, never averaged; a damaged run folder (unreadable JSON, log
rows without the metric, a task this repository does not have) is listed with what is wrong and the
rest is reported. Writes report.md (--markdown) and the figures (--figures) into the first folder
given unless told otherwise, never into the repository: curves-<task>.png, validation value per epoch (mean and min-max band over the finished runs of a setting, unfinished
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
from .run_folder import ARGS, HISTORY, LOG, SUMMARY, upgrade_names

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


class Malformed(Exception):
    """A run folder whose files cannot be used: it is listed as not counted, with this reason."""


def _load_json(path, default=None):
    """The file's JSON, ``default`` when it is absent; Malformed when it cannot be read."""
    if not path.exists():
        return default
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise Malformed(f"{path.name} cannot be read ({err})") from None


def check_log(log, metric):
    """Every row of a log.json must hold its epoch and both values of the task's metric."""
    if not isinstance(log, list):
        raise Malformed(f"{LOG} does not hold a list of epochs")
    for number, row in enumerate(log, 1):
        for key in ("epoch", f"valid_{metric.name}", f"test_{metric.name}"):
            value = row.get(key) if isinstance(row, dict) else None
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise Malformed(f"{LOG} row {number} has no number {key!r}")


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


def find_runs(folders, not_counted=None):
    """Every run folder (a folder with args.json) under ``folders``, each once however the folders
    overlap. A folder whose files cannot be used is left out and, with the reason, appended to
    ``not_counted`` as (folder, reason)."""
    runs, known = [], {}  # task name -> (renamed flags, the paper's arguments)
    for args_file in sorted({a.resolve() for folder in folders for a in pathlib.Path(folder).rglob(ARGS)}):
        try:
            run = read_run(args_file.parent, known)
        except Malformed as problem:
            if not_counted is not None:
                not_counted.append((args_file.parent, str(problem)))
            continue
        if run is None:
            print(f"skipped {args_file.parent}: not a run folder of these experiments", file=sys.stderr)
        else:
            runs.append(run)
    return runs


def read_run(folder, known):
    """The Run in ``folder`` (None when its args.json is another program's); Malformed when a file
    of it cannot be used. ``known`` caches each task's renamed flags and paper set-up."""
    args = _load_json(folder / ARGS)
    if not isinstance(args, dict) or args.get("experiment") not in experiments.MODULES:
        return None
    experiment = experiments.get(args["experiment"])
    task = next((t for t in experiment.tasks if t.name == args.get("task")), None)
    if task is None:
        raise Malformed(f"{ARGS} names a task this repository does not have: {args.get('task')!r}")
    if task.name not in known:
        known[task.name] = (cli.renamed_dests(experiment.parser(task)), vars(experiment.paper_defaults(task)))
    renamed, defaults = known[task.name]
    args = upgrade_names(args, renamed)
    log = _load_json(folder / LOG, [])
    check_log(log, task.metric)
    summary = _load_json(folder / SUMMARY)
    return Run(folder, args, log, summary, run_status(args, log, summary), task, describe_setting(args, defaults),
               devices_of(folder))


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
        results = [(r, result_of(r) if r.status == "finished" else None) for r in members]
        values = [result for _, result in results if result is not None]
        others = [f"{r.status} ({r.epochs_done}/{r.args.get('epochs')} epochs)" if r.status != "finished"
                  else f"finished, no test value in its {SUMMARY}" for r, result in results if result is None]
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


def not_counted_section(not_counted):
    """Markdown lines naming each damaged run folder and what is wrong with it."""
    if not not_counted:
        return ""
    return "\nNot counted, damaged run folders:\n\n" + "".join(
        f"- `{folder}`: {reason}\n" for folder, reason in not_counted)


def write_outputs(args, parser, runs, text):
    """report.md and the figures, where the flags say (default: the first folder given): never
    into the repository unless asked. A folder that takes no files ends the report with one line."""
    first = pathlib.Path(args.folders[0])
    markdown = pathlib.Path(args.markdown) if args.markdown else first / "report.md"
    figures = pathlib.Path(args.figures) if args.figures else first
    path = markdown
    try:
        markdown.write_text("# Results\n\nTest value at the epoch of the best validation value (each run's "
                            f"{SUMMARY}); std is the sample standard deviation over finished runs. The "
                            "reference values and their sources: repro/reference_results.json; the verdict's "
                            "rules: repro/references.py.\n\n" + text)
        written = [markdown]
        tasks = {r.task.name: r.task for r in runs}
        for name, task in sorted(tasks.items()):
            path = figures / f"curves-{name}.png"
            written.append(plot_curves(task, [r for r in runs if r.task.name == name], path))
    except OSError as err:
        flag = "--markdown FILE" if path == markdown else "--figures DIR"
        parser.exit(1, f"{parser.prog}: cannot write {path}: {err.strerror or err}. Pass {flag} "
                       "somewhere writable (the table is printed above).\n")
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m repro.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", help="folders holding run folders (searched recursively)")
    parser.add_argument("--figures", default=None,
                        help="where curves-<task>.png go (default: the first folder)")
    parser.add_argument("--markdown", default=None,
                        help="where the table is written (default: report.md in the first folder)")
    args = parser.parse_args(argv)
    missing = [f for f in args.folders if not pathlib.Path(f).is_dir()]
    if missing:
        parser.error(f"not a folder: {', '.join(missing)}")
    not_counted = []
    runs = find_runs(args.folders, not_counted)
    if not runs:
        parser.error(f"no run folders (with {ARGS}) to report under {', '.join(args.folders)}"
                     + "".join(f"; not counted: {folder}: {reason}" for folder, reason in not_counted))
    rows = summarise(runs)
    text = markdown_table(rows) + not_counted_section(not_counted)
    print(text)
    written = write_outputs(args, parser, runs, text)
    print("wrote " + ", ".join(str(f) for f in written))
    return rows


if __name__ == "__main__":
    main()
