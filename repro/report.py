"""The results over seeds and sweeps, beside the paper: a table and validation curves.

    python -m repro.report results/                      # every run folder under results/
    python -m repro.report results/sweeps/psMNIST-... --figures /tmp/figs --markdown /tmp/report.md

Reads every run folder (a folder with args.json) under the given folders, single runs and sweep
trials alike, and groups them by task and setting (the flags that differ from the paper's set-up;
seed, device and paths do not count). Per group: finished runs, mean +- std (sample std), min and
max of the test value at the epoch of the best validation value, the paper's value and the
difference. Unfinished and diverged runs are listed, never averaged. Figures:
<figures>/curves-<task>.png, validation value per epoch (mean and min-max band over the finished
runs of a setting, unfinished runs dashed) with the authors' published 2021 curve.
"""
import argparse
import collections
import dataclasses
import json
import pathlib
import statistics
import sys

from . import authors_logs, experiments
from .paths import REPO_ROOT

MAX_SETTINGS_PER_FIGURE = 5


@dataclasses.dataclass
class Run:
    path: pathlib.Path
    args: dict
    log: list
    status: str           # "finished", "diverged" or "unfinished"
    task: str
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
        events = [json.loads(line) for line in (folder / "history.jsonl").read_text().splitlines()]
    except (OSError, ValueError):
        return ()
    return tuple(sorted({e["device"].split(":")[0] for e in events if "device" in e}))


def describe_setting(args, defaults):
    """'paper set-up', or the flags that differ from it, e.g. 'epochs=3, nhid=32'."""
    changed = [f"{key}={value}" for key, value in sorted(args.items())
               if key not in experiments.NOT_A_SETTING and key in defaults and value != defaults[key]]
    return ", ".join(changed) or "paper set-up"


def find_runs(folders):
    runs, defaults = [], {}
    for folder in folders:
        for args_file in sorted(pathlib.Path(folder).rglob("args.json")):
            args = _read_json(args_file)
            if not isinstance(args, dict) or args.get("experiment") not in experiments.MODULES:
                print(f"skipped {args_file.parent}: not a run folder of these experiments", file=sys.stderr)
                continue
            task = args.get("task", args["experiment"])
            if task not in defaults:
                defaults[task] = vars(experiments.paper_defaults(task))
            log = _read_json(args_file.with_name("log.json"), [])
            summary = _read_json(args_file.with_name("summary.json"))
            runs.append(Run(args_file.parent, args, log, run_status(args, log, summary), task,
                            describe_setting(args, defaults[task]), devices_of(args_file.parent)))
    return runs


def test_at_best_valid(run, metric):
    """The test value of the first epoch with the best validation value (the paper's selection)."""
    best = None
    for row in run.log:
        if metric.better(row[f"valid_{metric.name}"], None if best is None else best[f"valid_{metric.name}"]):
            best = row
    return None if best is None else best[f"test_{metric.name}"]


def summarise(runs):
    """One table row per (task, setting)."""
    groups = collections.defaultdict(list)
    for run in runs:
        groups[run.task, run.setting].append(run)
    rows = []
    for (task, setting), members in sorted(groups.items()):
        metric = experiments.metric(task)
        values = [test_at_best_valid(r, metric) for r in members if r.status == "finished"]
        others = [f"{r.status} ({r.epochs_done}/{r.args.get('epochs')} epochs)" for r in members
                  if r.status != "finished"]
        mean = statistics.fmean(values) if values else None
        rows.append({"task": task, "setting": setting, "metric": metric, "runs": len(values),
                     "mean": mean, "std": statistics.stdev(values) if len(values) > 1 else None,
                     "min": min(values, default=None), "max": max(values, default=None),
                     "paper": metric.paper, "difference": None if mean is None else mean - metric.paper,
                     "not_counted": others})
    return rows


def markdown_table(rows):
    lines = ["| task | setting | runs | test (mean ± std) | min | max | paper | mean − paper | not counted |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        m = r["metric"]
        mean = "-" if r["mean"] is None else m.show(r["mean"]) + ("" if r["std"] is None else f" ± {r['std']:{m.fmt}}")
        diff = "-" if r["difference"] is None else f"{r['difference']:+{m.fmt}}"
        lines.append(f"| {r['task']} ({m.name}) | {r['setting']} | {r['runs']} | {mean} | {m.show(r['min'])} | "
                     f"{m.show(r['max'])} | {m.show(r['paper'])} | {diff} | {'; '.join(r['not_counted']) or '-'} |")
    return "\n".join(lines) + "\n"


def plot_curves(task, runs, path):
    """Validation value per epoch for ``task``: our settings and the authors' published curve."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = experiments.metric(task)
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
    published = authors_logs.load()["logs"].get(task)
    if published:
        ax.plot(published["epochs"], published["valid"], color="black", lw=1, marker=".", ms=3,
                label=authors_logs.citation(task))
        if published["epochs"][-1] > 10 * last_epoch:
            ax.set_xscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"validation {metric.name}{' [%]' if metric.unit == '%' else ''}")
    ax.set_title(f"{task}: validation {metric.name} per epoch (paper test: {metric.show(metric.paper)})")
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
        parser.error(f"no run folders (with args.json) under {', '.join(args.folders)}")
    rows = summarise(runs)
    table = markdown_table(rows)
    print(table)
    markdown = pathlib.Path(args.markdown or pathlib.Path(args.folders[0]) / "report.md")
    markdown.write_text("# Results\n\nTest value at the epoch of the best validation value; "
                        "std is the sample standard deviation over finished runs.\n\n" + table)
    figures = [plot_curves(task, [r for r in runs if r.task == task], pathlib.Path(args.figures) / f"curves-{task}.png")
               for task in sorted({r.task for r in runs})]
    print(f"wrote {markdown} and " + ", ".join(str(f) for f in figures))
    return rows


if __name__ == "__main__":
    main()
