"""The results report: grouping by task and setting, statistics over finished runs only (read from
each run's summary.json), the paper's value and the 2021 repository's best run with a verdict,
curves with the authors' published log, and that data's provenance."""
import dataclasses
import json
import subprocess
import sys

import pytest

from conftest import REPO, outside_the_checkout
from repro import authors_logs, experiments, references, report

AUTHORS_LOGS = REPO.parent / "shared" / "data" / "unicornn-2021-logs"


def write_run(folder, experiment, task, valid, test, status="finished", epochs=None, **changes):
    """A run folder as train.py leaves it: args.json, log.json and (unless unfinished) summary.json
    with the test value at the first best valid epoch."""
    declared, spec = experiments.find_task(task)
    assert declared.name == experiment
    args = vars(declared.paper_defaults(spec))
    args.update(experiment=experiment, task=task, epochs=epochs or len(valid), **changes)
    metric = spec.metric
    log = [{"epoch": i + 1, "train_loss": 1.0, f"valid_{metric.name}": v, f"test_{metric.name}": t,
            "lr": 0.001, "seconds": 1.0} for i, (v, t) in enumerate(zip(valid, test))]
    best = None
    for row in log:
        if metric.better(row[f"valid_{metric.name}"], None if best is None else best[f"valid_{metric.name}"]):
            best = row
    folder.mkdir(parents=True)
    (folder / "args.json").write_text(json.dumps(args))
    (folder / "log.json").write_text(json.dumps(log))
    if status != "unfinished":
        (folder / "summary.json").write_text(json.dumps(
            {"status": status, "epochs": args["epochs"], f"test_{metric.name}": best[f"test_{metric.name}"]}))
    (folder / "history.jsonl").write_text(json.dumps({"event": "start", "device": "cuda:0"}) + "\n")


@pytest.fixture
def results(tmp_path):
    root = tmp_path / "results"
    # three finished seeds: test at the (first) best valid epoch = 97, 98, 99.5
    write_run(root / "psMNIST" / "a", "psMNIST", "psMNIST", [90, 95, 94], [96, 97, 99], seed=1)
    write_run(root / "psMNIST" / "b", "psMNIST", "psMNIST", [96, 95, 96], [98, 90, 91], seed=2)
    write_run(root / "sweeps" / "s1" / "runs" / "t1", "psMNIST", "psMNIST", [90, 91, 92], [97, 98, 99.5], seed=3)
    write_run(root / "psMNIST" / "c", "psMNIST", "psMNIST", [99], [99.9], status="unfinished", epochs=3, seed=4)
    write_run(root / "psMNIST" / "d", "psMNIST", "psMNIST", [50], [50], status="diverged", epochs=3, seed=5)
    write_run(root / "psMNIST" / "e", "psMNIST", "psMNIST", [80, 85, 84], [81, 86, 80], nhid=32)
    write_run(root / "healthcare_HR" / "a", "healthcare", "healthcare_HR", [3.0, 2.0, 2.5], [3.1, 1.5, 1.0],
              name="HR")
    return root


def test_table_groups_by_setting_and_counts_only_finished_runs(results, tmp_path, capsys):
    rows = report.main([str(results), "--figures", str(tmp_path / "figs"), "--markdown", str(tmp_path / "r.md")])
    by = {(r["task"], r["setting"]): r for r in rows}
    paper = by["psMNIST", "epochs=3"]
    assert paper["runs"] == 3 and paper["mean"] == pytest.approx((97 + 98 + 99.5) / 3)
    assert paper["std"] == pytest.approx(1.2583057, rel=1e-6) and (paper["min"], paper["max"]) == (97, 99.5)
    assert paper["difference"] == pytest.approx(paper["mean"] - 98.4) and paper["best"] == 99.5
    assert paper["not_counted"] == ["unfinished (1/3 epochs)", "diverged (1/3 epochs)"]
    assert paper["verdict"] == "no paper std"  # the paper's std of psMNIST is not confirmed
    small = by["psMNIST", "epochs=3, nhid=32"]
    assert small["mean"] == 86 and small["std"] is None and small["verdict"] == "too few runs"
    hr = by["healthcare_HR", "epochs=3"]  # lower RMSE is better: best valid 2.0 at epoch 2
    assert hr["mean"] == 1.5 and hr["best"] == 1.5 and hr["paper"] is None and hr["verdict"] == "too few runs"
    table = (tmp_path / "r.md").read_text()
    assert ("| psMNIST (accuracy) | epochs=3 | 3 | 98.17% ± 1.26 | 98.4% (std not confirmed) | no paper std "
            "| -0.23 | 99.50% | 98.4% | unfinished (1/3 epochs); diverged (1/3 epochs) |") in table
    assert "| healthcare_HR (HR_RMSE) | epochs=3 | 1 | 1.5000 | not confirmed | too few runs | - | 1.5000 | 1.31 |" in table
    assert table.split("\n", 4)[4] in capsys.readouterr().out
    assert {p.name for p in (tmp_path / "figs").iterdir()} == {"curves-psMNIST.png", "curves-healthcare_HR.png"}


def test_the_result_is_read_where_the_run_finished(tmp_path):
    """summary.json holds the run's result; the report takes it from there (it used to recompute it
    from log.json, which a run that selects differently would contradict)."""
    write_run(tmp_path / "r", "imdb", "imdb", [80.0, 81.0], [70.0, 71.0])
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    (tmp_path / "r" / "summary.json").write_text(json.dumps(dict(summary, test_accuracy=75.5)))
    rows = report.main([str(tmp_path), "--figures", str(tmp_path / "f")])
    assert rows[0]["mean"] == 75.5
    (tmp_path / "r" / "summary.json").write_text(json.dumps({"status": "finished", "epochs": 2}))
    rows = report.main([str(tmp_path), "--figures", str(tmp_path / "f")])
    assert rows[0]["runs"] == 0 and rows[0]["not_counted"] == ["finished, no test value in its summary.json"]


def test_verdict_against_the_papers_spread(tmp_path, monkeypatch):
    """With a paper std (here a stand-in: no std of the paper is confirmed yet) the verdict says
    whether our mean over 3 or more runs lies within mean ± 2 std."""
    reference = dataclasses.replace(references.of("eigenworms"), paper_std=3.0, paper_runs=5)
    monkeypatch.setattr(references, "of", lambda task: reference)
    for seed, test in enumerate([88.0, 91.0, 85.0]):
        write_run(tmp_path / f"r{seed}", "eigenworms", "eigenworms", [50.0] * 250, [test] * 250, seed=seed)
    rows = report.main([str(tmp_path), "--figures", str(tmp_path / "f")])
    assert rows[0]["setting"] == "paper set-up" and rows[0]["verdict"] == "within the paper's spread"
    assert "| eigenworms (accuracy) | paper set-up | 3 | 88.00% ± 3.00 | 90.3 ± 3.0% over 5 runs | within the " \
           "paper's spread | -2.30 | 91.00% | 94.87% (its README: 94.9%) | - |" in (tmp_path / "report.md").read_text()
    write_run(tmp_path / "r3", "eigenworms", "eigenworms", [50.0] * 250, [60.0] * 250, seed=3)
    assert report.main([str(tmp_path), "--figures", str(tmp_path / "f")])[0]["verdict"] == "below the paper's spread"


def test_a_new_experiment_needs_only_its_declaration(tmp_path, monkeypatch):
    """repro/ knows no experiment by name: a new one with two tasks, whose names follow no pattern,
    reaches the report through its declaration and one line in the table."""
    module = tmp_path / "toy_train.py"
    module.write_text(
        "import argparse\n"
        "from repro import cli\n"
        "from repro.experiment import Experiment, Task\n"
        "from repro.metrics import Metric\n"
        "def build_parser():\n"
        "    parser = argparse.ArgumentParser()\n"
        "    parser.add_argument('--which', choices=['left', 'right'], default='left')\n"
        "    parser.add_argument('--width', type=int, default=3)\n"
        "    cli.add_training_args(parser, epochs=2)\n"
        "    return parser\n"
        "EXPERIMENT = Experiment(name='toy', build_parser=build_parser, main=None, task_flag='--which',\n"
        "    tasks=(Task('port', Metric('error', False, '.3f'), choice='left', defaults={'width': 5}),\n"
        "           Task('starboard', Metric('score', True, '.1f'), choice='right')))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(experiments.MODULES, "toy", "toy_train")
    toy = experiments.get("toy")
    assert vars(toy.paper_defaults(toy.task("port")))["width"] == 5
    for name, which, width, valid, test in (("a", "left", 5, [0.5, 0.2], [0.4, 0.3]),
                                            ("b", "right", 7, [1.0, 2.0], [3.0, 4.0])):
        args = dict(vars(toy.paper_defaults(toy.task_for(["--which", which]))), width=width,
                    experiment="toy", task=toy.task_for(["--which", which]).name)
        metric = toy.task(args["task"]).metric
        folder = tmp_path / "runs" / name
        folder.mkdir(parents=True)
        (folder / "args.json").write_text(json.dumps(args))
        (folder / "log.json").write_text(json.dumps([{"epoch": e + 1, f"valid_{metric.name}": v,
                                                      f"test_{metric.name}": t} for e, (v, t) in enumerate(zip(valid, test))]))
        (folder / "summary.json").write_text(json.dumps({"status": "finished", f"test_{metric.name}": test[-1]}))
    rows = report.main([str(tmp_path / "runs"), "--figures", str(tmp_path / "f")])
    assert [(r["task"], r["setting"], r["mean"], r["verdict"]) for r in rows] == [
        ("port", "paper set-up", 0.3, "too few runs"), ("starboard", "width=7", 4.0, "too few runs")]


def test_runs_know_where_they_trained(results):
    runs = report.find_runs([results])
    assert {r.devices for r in runs} == {("cuda",)}
    (runs[0].path / "history.jsonl").unlink()
    assert report.devices_of(runs[0].path) == ()


def test_the_paper_set_up_is_named_so(tmp_path):
    write_run(tmp_path / "r", "imdb", "imdb", [80.0] * 50, [81.0] * 50)
    rows = report.main([str(tmp_path), "--figures", str(tmp_path / "f")])
    assert rows[0]["setting"] == "paper set-up" and rows[0]["runs"] == 1
    assert (tmp_path / "report.md").exists()


def test_no_runs_is_an_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as err:
        report.main([str(tmp_path)])
    assert err.value.code == 2 and "no run folders" in capsys.readouterr().err


def test_authors_curves_cover_every_task_with_their_source():
    data = authors_logs.load()
    assert data["commit"] == authors_logs.COMMIT and "github.com/tk-rusch/unicornn" in data["source"]
    assert set(data["logs"]) == {"psMNIST", "noisy_cifar", "eigenworms", "healthcare_RR", "healthcare_HR", "imdb"}
    psmnist = data["logs"]["psMNIST"]
    assert psmnist["epochs"][:3] == [1, 21, 41] and psmnist["valid"][0] == 63.67 and psmnist["final_test"] == 98.4
    assert len(data["logs"]["noisy_cifar"]["valid"]) == 500 and data["logs"]["healthcare_HR"]["final_test"] == 1.31


@pytest.mark.skipif(not AUTHORS_LOGS.is_dir(), reason="the published logs are not beside this checkout")
def test_the_committed_curves_equal_the_published_logs():
    assert authors_logs.import_logs(AUTHORS_LOGS) == authors_logs.load()


def test_overlapping_folders_count_each_run_once(results, tmp_path):
    sweep = results / "sweeps" / "s1"
    rows = report.main([str(results), str(sweep), str(sweep / "runs"), str(results / "psMNIST"),
                        "--figures", str(tmp_path / "f"), "--markdown", str(tmp_path / "r.md")])
    by = {(r["task"], r["setting"]): r for r in rows}
    assert by["psMNIST", "epochs=3"]["runs"] == 3 and len(by["psMNIST", "epochs=3"]["not_counted"]) == 2


def test_a_damaged_run_folder_is_listed_and_the_rest_is_reported(results, tmp_path, capsys):
    write_run(results / "psMNIST" / "no-metric", "psMNIST", "psMNIST", [90, 95, 94], [96, 97, 99], seed=6)
    log = results / "psMNIST" / "no-metric" / "log.json"
    log.write_text(json.dumps([{"epoch": 1, "train_loss": 1.0}]))
    write_run(results / "psMNIST" / "torn-args", "psMNIST", "psMNIST", [90], [96], seed=7)
    (results / "psMNIST" / "torn-args" / "args.json").write_text('{"experiment": "psM')
    write_run(results / "psMNIST" / "torn-summary", "psMNIST", "psMNIST", [90], [96], seed=8)
    (results / "psMNIST" / "torn-summary" / "summary.json").write_bytes(b"\x00" * 10)
    rows = report.main([str(results), "--figures", str(tmp_path / "f"), "--markdown", str(tmp_path / "r.md")])
    by = {(r["task"], r["setting"]): r for r in rows}
    assert by["psMNIST", "epochs=3"]["runs"] == 3 and by["healthcare_HR", "epochs=3"]["runs"] == 1
    out, written = capsys.readouterr().out, (tmp_path / "r.md").read_text()
    for name, reason in (("no-metric", "log.json row 1 has no number 'valid_accuracy'"),
                         ("torn-args", "args.json cannot be read"), ("torn-summary", "summary.json cannot be read")):
        line = next(line for line in out.splitlines() if f"/{name}`" in line)
        assert reason in line and line in written


def test_without_flags_nothing_is_written_into_the_repository(results):
    before = {p: p.read_bytes() for p in (REPO / "imgs").iterdir()}
    report.main([str(results)])
    assert {p: p.read_bytes() for p in (REPO / "imgs").iterdir()} == before
    assert {p.name for p in results.glob("*.*")} == {"report.md", "curves-psMNIST.png", "curves-healthcare_HR.png"}


def read_only(folder, command):
    """``command`` in a mount namespace where ``folder`` is mounted read-only (even root cannot
    write there)."""
    script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'
    return ["unshare", "--mount", "sh", "-c", script, str(folder)] + command


def test_a_read_only_folder_ends_the_report_with_one_line(results, tmp_path):
    if subprocess.run(read_only(results, ["true"]), capture_output=True).returncode != 0:
        pytest.skip("unshare --mount (a read-only bind mount) is refused here")
    report_command = [sys.executable, "-m", "repro.report", str(results)]
    for extra, flag in (([], "--markdown FILE"), (["--markdown", str(tmp_path / "r.md")], "--figures DIR")):
        done = subprocess.run(read_only(results, report_command + extra), cwd=REPO, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and "Read-only file system" in done.stderr
        assert f"Pass {flag} somewhere writable" in done.stderr
        assert "| psMNIST (accuracy) | epochs=3 | 3 |" in done.stdout  # the table is printed first


def test_the_report_runs_from_any_directory(results, tmp_path):
    cwd, env = outside_the_checkout(tmp_path)
    done = subprocess.run([sys.executable, "-m", "repro.report", str(results)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "| psMNIST (accuracy) | epochs=3 | 3 |" in done.stdout and (results / "report.md").exists()
