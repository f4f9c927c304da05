"""The reference values (repro/reference_results.json): one entry per declared task, each number
with its source, the repository's best runs equal to the authors' published logs, no std without a
mean, and the verdict's rules."""
import json

import pytest

from conftest import REPO
from repro import authors_logs, experiments, references
from repro.metrics import Metric

ACCURACY = Metric("accuracy", True, ".2f", "%")


def test_every_declared_task_has_reference_values_and_no_other():
    declared = {task.name for name in experiments.MODULES for task in experiments.get(name).tasks}
    assert set(references.load()) == declared


@pytest.mark.parametrize("task", sorted(references.load()))
def test_every_value_has_a_source(task):
    entry = json.loads(references.DATA_FILE.read_text())["tasks"][task]
    paper, repository = entry["paper"], entry["repository"]
    assert paper["mean"] is not None or paper["std"] is None and paper["runs"] is None
    assert (paper["mean"] is None) == (paper["source"] is None)
    assert paper["not_confirmed"]  # what is still unknown about the paper's value, said for every task
    assert repository["source"] and authors_logs.LOGS[task][1] in repository["source"]


@pytest.mark.parametrize("task", sorted(authors_logs.LOGS))
def test_the_repositorys_best_run_is_its_published_log(task):
    reference, log = references.of(task), authors_logs.load()["logs"][task]
    assert reference.repository_best_run == log["final_test"]
    assert abs(reference.repository_best_run - reference.repository_readme) < 0.05  # the README rounds it


def test_the_2021_readme_printed_single_runs_not_the_papers_means():
    """The values issue 20 found confused: EigenWorms and RR differ between the paper and the 2021
    README, and the HR mean of the paper is not confirmed (sources disagree)."""
    assert references.of("eigenworms").paper_mean == 90.3 and references.of("eigenworms").repository_readme == 94.9
    assert references.of("healthcare_RR").paper_mean == 1.06 and references.of("healthcare_RR").repository_readme == 1.0
    assert references.of("healthcare_HR").paper_mean is None


def reference(mean=90.3, std=3.0, runs=5):
    return references.Reference(paper_mean=mean, paper_std=std, paper_runs=runs, paper_source="table",
                                repository_best_run=94.87, repository_readme=94.9, repository_source="log")


@pytest.mark.parametrize("mean,runs,ref,expected", [
    (90.3, 3, reference(), "within the paper's spread"),
    (84.3, 3, reference(), "within the paper's spread"),     # exactly 2 std below
    (84.2, 3, reference(), "below the paper's spread"),
    (96.4, 10, reference(), "above the paper's spread"),
    (90.3, 2, reference(), "too few runs"),
    (90.3, 0, reference(), "too few runs"),
    (90.3, 3, reference(std=None), "no paper std"),
    (90.3, 3, reference(mean=None, std=None), "no paper value"),
    (90.3, 3, None, "no paper value"),
])
def test_verdict(mean, runs, ref, expected):
    assert references.verdict(mean, runs, ref) == expected


def test_how_the_train_scripts_name_both_values():
    assert references.describe(reference(), ACCURACY) == \
        "paper 90.3 ± 3.0% over 5 runs; the 2021 repository's best run 94.87% (its README: 94.9%)"
    assert references.describe(reference(std=None, runs=None), ACCURACY).startswith("paper 90.3% (std not confirmed);")
    assert references.describe(reference(mean=None, std=None), ACCURACY).startswith("paper not confirmed;")
    assert references.describe(None, ACCURACY) == "no reference values for this task"


@pytest.mark.parametrize("task", sorted(references.load()))
def test_the_experiment_readme_shows_both_reference_values(task):
    experiment, _ = experiments.find_task(task)
    reference, text = references.of(task), (REPO / experiment.name / "README.md").read_text()
    assert ("not confirmed" if reference.paper_mean is None else f"{reference.paper_mean}") in text
    assert f"{reference.repository_best_run}" in text and "2021 repository's best run" in text
