"""The results report: grouping by task and setting, statistics over finished runs only, the
paper's value and difference, curves with the authors' published log, and that data's provenance."""
import json
import subprocess
import sys

import pytest

from conftest import REPO, outside_the_checkout
from repro import authors_logs, experiments, report

AUTHORS_LOGS = REPO.parent / "shared" / "data" / "unicornn-2021-logs"


def write_run(folder, experiment, task, valid, test, status="finished", epochs=None, **changes):
    """A run folder as train.py leaves it: args.json, log.json and (unless unfinished) summary.json."""
    args = vars(experiments.paper_defaults(task))
    args.update(experiment=experiment, task=task, epochs=epochs or len(valid), **changes)
    metric = experiments.metric(task)
    log = [{"epoch": i + 1, "train_loss": 1.0, f"valid_{metric.name}": v, f"test_{metric.name}": t,
            "lr": 0.001, "seconds": 1.0} for i, (v, t) in enumerate(zip(valid, test))]
    folder.mkdir(parents=True)
    (folder / "args.json").write_text(json.dumps(args))
    (folder / "log.json").write_text(json.dumps(log))
    if status != "unfinished":
        (folder / "summary.json").write_text(json.dumps({"status": status, "epochs": args["epochs"]}))
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
    assert paper["difference"] == pytest.approx(paper["mean"] - 98.4)
    assert paper["not_counted"] == ["unfinished (1/3 epochs)", "diverged (1/3 epochs)"]
    assert by["psMNIST", "epochs=3, nhid=32"]["mean"] == 86 and by["psMNIST", "epochs=3, nhid=32"]["std"] is None
    hr = by["healthcare_HR", "epochs=3"]  # lower RMSE is better: best valid 2.0 at epoch 2
    assert hr["mean"] == 1.5 and hr["paper"] == 1.31
    table = (tmp_path / "r.md").read_text()
    assert "| psMNIST (accuracy) | epochs=3 | 3 | 98.17% ± 1.26 | 97.00% | 99.50% | 98.40% | -0.23 |" in table
    assert table.split("\n", 4)[4] in capsys.readouterr().out
    assert {p.name for p in (tmp_path / "figs").iterdir()} == {"curves-psMNIST.png", "curves-healthcare_HR.png"}


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
