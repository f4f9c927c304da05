"""Sweeps on Ray Tune, end to end on the CPU with tiny psMNIST data: seeds, a random search, and a
sweep killed mid-way and resumed (finished trials not re-run, the interrupted one continued)."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO

pytest.importorskip("ray.tune", reason="sweeps need Ray Tune (requirements.txt)")


@pytest.fixture
def tiny_flags(tmp_path):
    from tiny_data import write_mnist
    write_mnist(tmp_path / "mnist", n_train=400, n_test=50)
    return ["--data-dir", str(tmp_path / "mnist"), "--cache-dir", str(tmp_path / "cache"), "--valid-size", "50",
            "--nhid", "8", "--nlayers", "1", "--batch", "16", "--test-batch", "100", "--device", "cpu"]


def sweep(argv, **kwargs):
    return subprocess.run([sys.executable, "-m", "repro.sweep"] + argv, cwd=REPO, capture_output=True,
                          text=True, timeout=600, **kwargs)


def runs_of(sweep_dir):
    runs = sorted((sweep_dir / "runs").iterdir())
    return runs, [json.loads((r / "args.json").read_text()) for r in runs]


def events(run):
    return [json.loads(line)["event"] for line in (run / "history.jsonl").read_text().splitlines()]


def test_two_seeds_end_to_end(tiny_flags, tmp_path):
    out = tmp_path / "sweep"
    done = sweep(["psMNIST"] + tiny_flags + ["--epochs", "2", "--seeds", "0", "1", "--out-dir", str(out)])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    runs, args = runs_of(out)
    assert sorted(a["seed"] for a in args) == [0, 1] and all(a["epochs"] == 2 for a in args)
    for run in runs:
        assert json.loads((run / "summary.json").read_text())["status"] == "finished"
        assert list(run.glob("events.out.tfevents.*"))
    assert "2 trials finished, 0 failed" in done.stdout


def test_random_search_of_three_samples(tiny_flags, tmp_path):
    out = tmp_path / "sweep"
    done = sweep(["psMNIST"] + tiny_flags + ["--epochs", "1", "--max-train-batches", "3", "--out-dir", str(out),
                  "--sample", "lr=loguniform:1e-3:1e-2", "dt=uniform:0.05:0.3", "--num-samples", "3"])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    _, args = runs_of(out)
    assert len(args) == 3 and len({a["lr"] for a in args}) == 3
    assert all(1e-3 <= a["lr"] <= 1e-2 and 0.05 <= a["dt"][0] <= 0.3 for a in args)
    assert all(a["nhid"] == 8 and a["seed"] == 1234 for a in args)  # fixed flags reach every trial


def test_bad_sweep_flags_stop_before_ray_starts(tiny_flags, tmp_path):
    for argv, message in ((["--sample", "lr=normal:0:1"], "KIND must be one of"),
                          (["--sample", "bogus=uniform:0:1"], "not a hyperparameter flag"),
                          (["--sample", "dt=uniform:-1:1"], "argument --dt"),
                          (["--seeds", "0", "--seed", "3"], "either --seed"),
                          (["--lr", "-1"], "argument --lr")):
        done = sweep(["psMNIST"] + tiny_flags + argv + ["--out-dir", str(tmp_path / "s")])
        assert done.returncode != 0 and message in done.stderr, (argv, done.stderr[-2000:])
    assert not (tmp_path / "s").exists()


def test_a_killed_sweep_resumes_without_rerunning_finished_trials(tmp_path):
    from tiny_data import write_mnist
    write_mnist(tmp_path / "mnist", n_train=900, n_test=50)
    out = tmp_path / "sweep"
    flags = ["--data-dir", str(tmp_path / "mnist"), "--cache-dir", str(tmp_path / "cache"), "--valid-size", "50",
             "--nhid", "16", "--nlayers", "2", "--batch", "32", "--test-batch", "100", "--device", "cpu"]
    driver = subprocess.Popen([sys.executable, "-m", "repro.sweep", "psMNIST"] + flags +
                              ["--epochs", "3", "--seeds", "0", "1", "2", "--max-concurrent", "1", "--out-dir", str(out)],
                              cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def state():
        runs = sorted((out / "runs").iterdir()) if (out / "runs").exists() else []
        return ([r for r in runs if (r / "summary.json").exists()],
                [r for r in runs if (r / "log.json").exists() and not (r / "summary.json").exists()])
    deadline = time.time() + 400
    while time.time() < deadline and driver.poll() is None:
        finished, started = state()
        if finished and started:
            break
        time.sleep(0.05)
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and everything it started, mid-trial
    driver.wait()
    finished, started = state()
    assert finished and started, "the sweep ended before it could be killed mid-way"
    time.sleep(3)  # Ray's workers notice their driver is gone and exit

    done = sweep(["--resume", str(out)])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    runs, args = runs_of(out)
    assert sorted(a["seed"] for a in args) == [0, 1, 2]
    for run in runs:
        assert json.loads((run / "summary.json").read_text())["status"] == "finished"
        assert [row["epoch"] for row in json.loads((run / "log.json").read_text())] == [1, 2, 3]
    for run in finished:
        assert events(run) == ["start", "finished"]          # not trained again
    for run in started:
        assert events(run)[:3] == ["start", "resume", "finished"]  # continued from its checkpoint
