"""The values a result is compared with, per task, read from ``reference_results.json`` beside this
file: the paper's table value (a mean over runs, with std and number of runs where a citable source
gives them) and the best single run of the authors' 2021 repository (what its README printed), each
with its source. A value no citable source confirmed is null there and never used.

The verdict on our runs of a setting (``verdict``):

- "too few runs" below 3 finished runs;
- "no paper value" when the paper's mean is not confirmed;
- "no paper std" when the paper's std is not confirmed (or not given): without the paper's spread
  no verdict is drawn, only the difference of the means is shown;
- "within the paper's spread" when our mean lies within the paper's mean ± 2 std, else "below the
  paper's spread" or "above the paper's spread" (literal: for RMSE, below is better).
"""
import dataclasses
import functools
import json
import pathlib

DATA_FILE = pathlib.Path(__file__).with_name("reference_results.json")
MIN_RUNS = 3   # fewer finished runs give no verdict
SPREAD = 2.0   # "within": |our mean - paper mean| <= SPREAD x the paper's std


@dataclasses.dataclass(frozen=True)
class Reference:
    """One task's reference values; None where not confirmed."""
    paper_mean: float | None
    paper_std: float | None
    paper_runs: int | None
    paper_source: str | None
    repository_best_run: float
    repository_readme: float
    repository_source: str


@functools.cache
def load():
    """{task: Reference} from the data file."""
    tasks = json.loads(DATA_FILE.read_text())["tasks"]
    return {task: Reference(paper_mean=v["paper"]["mean"], paper_std=v["paper"]["std"],
                            paper_runs=v["paper"]["runs"], paper_source=v["paper"]["source"],
                            repository_best_run=v["repository"]["best_run"],
                            repository_readme=v["repository"]["readme"],
                            repository_source=v["repository"]["source"])
            for task, v in tasks.items()}


def of(task):
    """The Reference of ``task``, or None for a task the paper does not have."""
    return load().get(task)


def paper_text(reference, metric):
    """'90.3 ± 3.0% over 5 runs', '98.4% (std not confirmed)' or 'not confirmed'. Reference values
    are printed with the digits their source gives."""
    if reference is None or reference.paper_mean is None:
        return "not confirmed"
    if reference.paper_std is None:
        return f"{reference.paper_mean}{metric.unit} (std not confirmed)"
    runs = "" if reference.paper_runs is None else f" over {reference.paper_runs} runs"
    return f"{reference.paper_mean} ± {reference.paper_std}{metric.unit}{runs}"


def repository_text(reference, metric):
    """'94.87% (its README: 94.9%)': the 2021 repository's best run, and its README's rounding."""
    readme = "" if reference.repository_readme == reference.repository_best_run else \
        f" (its README: {reference.repository_readme}{metric.unit})"
    return f"{reference.repository_best_run}{metric.unit}{readme}"


def describe(reference, metric):
    """Both reference values in one phrase, as the train scripts print them."""
    if reference is None:
        return "no reference values for this task"
    return (f"paper {paper_text(reference, metric)}; the 2021 repository's best run "
            f"{repository_text(reference, metric)}")


def verdict(mean, runs, reference):
    """How our mean over ``runs`` finished runs compares with the paper's spread (module docstring)."""
    if runs < MIN_RUNS:
        return "too few runs"
    if reference is None or reference.paper_mean is None:
        return "no paper value"
    if reference.paper_std is None:
        return "no paper std"
    if abs(mean - reference.paper_mean) <= SPREAD * reference.paper_std:
        return "within the paper's spread"
    return "below the paper's spread" if mean < reference.paper_mean else "above the paper's spread"
