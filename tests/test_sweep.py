"""Sweeps on Ray Tune, end to end on the CPU with tiny psMNIST data: seeds (from any directory), a
random search, flags checked before Ray starts (every value a --sample can draw), failed trials
with their own errors and exit status 1, impossible addresses and resources refused at once, and a
sweep stopped by Ctrl-C that says how to continue and resumes with new resources (finished trials
not re-run, the interrupted one continued; a second process on the folder refused meanwhile)."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import REPO, outside_the_checkout

pytest.importorskip("ray.tune", reason="sweeps need Ray Tune (requirements.txt)")


@pytest.fixture
def tiny_flags(tmp_path):
    from tiny_data import write_mnist
    write_mnist(tmp_path / "mnist", n_train=400, n_test=50)
    return ["--data-dir", str(tmp_path / "mnist"), "--cache-dir", str(tmp_path / "cache"), "--valid-size", "50",
            "--nhid", "8", "--nlayers", "1", "--batch", "16", "--test-batch", "100", "--device", "cpu"]


def sweep(argv, cwd=REPO, timeout=600, **kwargs):
    return subprocess.run([sys.executable, "-m", "repro.sweep"] + argv, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, **kwargs)


def runs_of(sweep_dir):
    runs = sorted((sweep_dir / "runs").iterdir())
    return runs, [json.loads((r / "args.json").read_text()) for r in runs]


def events(run):
    return [json.loads(line)["event"] for line in (run / "history.jsonl").read_text().splitlines()]


def tune_rows(sweep_dir, start):
    """The rows Ray Tune got in one start of the sweep (its folder under <sweep>/tune/)."""
    return [json.loads(line) for result in sorted((sweep_dir / "tune").glob(f"{start}/*/result.json"))
            for line in result.read_text().splitlines()]


def test_two_seeds_end_to_end_from_any_directory(tiny_flags, tmp_path):
    out = tmp_path / "sweep"
    cwd, env = outside_the_checkout(tmp_path)
    done = sweep(["psMNIST"] + tiny_flags + ["--epochs", "2", "--seeds", "0", "1", "--out-dir", str(out)],
                 cwd=cwd, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    runs, args = runs_of(out)
    assert sorted(a["seed"] for a in args) == [0, 1] and all(a["epochs"] == 2 for a in args)
    for run in runs:
        assert json.loads((run / "summary.json").read_text())["status"] == "finished"
        assert list(run.glob("events.out.tfevents.*"))
    assert "2 of 2 trials finished, 0 failed" in done.stdout

    refused = sweep(["--resume", str(out), "--num-samples", "3", "--out-dir", str(tmp_path / "x"), "--seeds", "0", "1",
                     "--max-concurrent", "1", "--lr", "0.1"])
    cannot_change = refused.stderr.strip().splitlines()[-1].split("these cannot change: ")[1].split(". Only")[0]
    assert refused.returncode == 2 and cannot_change.startswith(
        f"--num-samples 3 (sweep: 1); --out-dir {tmp_path / 'x'} (sweep: {out}); the experiment and train.py "
        "flags --lr 0.1 (sweep: psMNIST --data-dir")  # --seeds repeats the sweep's, --max-concurrent may change


def test_random_search_draws_settings_that_every_seed_runs(tiny_flags, tmp_path):
    out = tmp_path / "sweep"
    done = sweep(["psMNIST"] + tiny_flags + ["--epochs", "1", "--max-train-batches", "3", "--out-dir", str(out),
                  "--sample", "lr=loguniform:1e-3:1e-2", "dt=uniform:0.05:0.3", "--num-samples", "2",
                  "--seeds", "5", "6"])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    _, args = runs_of(out)
    settings = {(a["lr"], a["dt"][0]) for a in args}
    assert len(args) == 4 and len(settings) == 2  # two settings, each run once per seed
    assert all(sorted(a["seed"] for a in args if (a["lr"], a["dt"][0]) == s) == [5, 6] for s in settings)
    assert all(1e-3 <= a["lr"] <= 1e-2 and 0.05 <= a["dt"][0] <= 0.3 for a in args)
    assert all(a["nhid"] == 8 for a in args)  # fixed flags reach every trial
    assert json.loads((out / "sweep.json").read_text())["trials"] == [
        {"lr": a["lr"], "dt": a["dt"][0], "seed": a["seed"]} for a in args]  # the record --resume runs


def test_bad_sweep_flags_stop_before_ray_starts(tiny_flags, tmp_path, capsys):
    from repro import sweep as sweeps
    for argv, message in ((["--sample", "lr=normal:0:1"], "KIND must be one of"),
                          (["--sample", "bogus=uniform:0:1"], "not a hyperparameter flag"),
                          (["--sample", "dt=uniform:-1:1"], "argument --dt"),
                          (["--sample", "dropout=uniform:0:1"],  # the high end breaks the rule
                           "--sample dropout=uniform:0:1: train.py refuses a value it can draw (dropout=1.0): "
                           "argument --dropout: must be in [0, 1), got 1.0"),
                          (["--nlayers", "2", "--dt", "0.1", "0.2", "--sample", "nlayers=randint:2:4"],
                           "(nlayers=3): argument --dt: give one value or one per layer (3)"),
                          (["--cpus-per-trial", "0"], "argument --cpus-per-trial"),
                          (["--seeds", "0", "--seed", "3"], "either --seed"),
                          (["--lr", "-1"], "argument --lr")):
        with pytest.raises(SystemExit) as refused:
            sweeps.main(["psMNIST"] + tiny_flags + argv + ["--out-dir", str(tmp_path / "s")])
        said = f"{refused.value.code}\n{capsys.readouterr().err}"
        assert refused.value.code != 0 and message in said, (argv, said[-2000:])
    (tmp_path / "a-file").write_text("")
    with pytest.raises(SystemExit, match=f"cannot use {tmp_path / 'a-file' / 's'} as a sweep folder: Not a directory"):
        sweeps.main(["psMNIST"] + tiny_flags + ["--out-dir", str(tmp_path / "a-file" / "s")])
    import ray
    assert not (tmp_path / "s").exists() and not ray.is_initialized()


def test_a_trial_keeps_its_own_error_line():
    from psMNIST import train
    from repro import sweep as sweeps
    with pytest.raises(RuntimeError, match=r"^argument --device: cuda:7 is not available here"):
        sweeps.run_main(train, ["--device", "cuda:7"], on_epoch=None)  # argparse: message on stderr, status 2


def test_failed_trials_fail_the_sweep_with_their_errors(tiny_flags, tmp_path):
    out = tmp_path / "sweep"
    done = sweep(["psMNIST"] + tiny_flags + ["--dt", "1000", "--epochs", "2", "--seeds", "0", "1", "--out-dir", str(out)])
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert f"sweep {out}: 0 of 2 trials finished, 2 failed, 0 not finished (interrupted or not started)" in lines
    for run in ("000_seed=0", "001_seed=1"):
        failed = next(line for line in lines if line.startswith(f"  failed: runs/{run}: RuntimeError: "))
        assert f"{out / 'runs' / run} diverged in epoch 1" in failed
    assert any(line.endswith(f"python -m repro.sweep --resume {out}") for line in lines)


def test_a_dead_address_or_an_impossible_trial_size_is_refused_at_once(tiny_flags, tmp_path):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base = ["psMNIST"] + tiny_flags + ["--epochs", "1", "--out-dir", str(tmp_path / "s")]
    dead = sweep(base + ["--address", f"127.0.0.1:{port}"], timeout=120)
    assert dead.returncode == 1 and dead.stderr.strip().splitlines()[-1].startswith(
        f"--address 127.0.0.1:{port}: nothing answers at 127.0.0.1:{port} (Connection refused)")
    too_big = sweep(base + ["--cpus-per-trial", "512"], timeout=300)
    assert too_big.returncode == 1 and "Traceback" not in too_big.stderr
    assert too_big.stderr.strip().splitlines()[-1].startswith("--cpus-per-trial 512: this machine has ")
    assert not (tmp_path / "s").exists()


def test_an_interrupted_sweep_says_how_to_continue_and_resumes_with_new_resources(tmp_path):
    from tiny_data import write_mnist
    write_mnist(tmp_path / "mnist", n_train=900, n_test=50)
    out = tmp_path / "sweep"
    flags = ["--data-dir", str(tmp_path / "mnist"), "--cache-dir", str(tmp_path / "cache"), "--valid-size", "50",
             "--nhid", "16", "--nlayers", "2", "--batch", "32", "--test-batch", "100", "--device", "cpu"]
    # SIGINT is ignored in processes a shell starts in the background: give the driver the default.
    driver = subprocess.Popen([sys.executable, "-m", "repro.sweep", "psMNIST"] + flags +
                              ["--epochs", "3", "--seeds", "0", "1", "2", "--max-concurrent", "1", "--out-dir", str(out)],
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))

    def state():
        runs = sorted((out / "runs").iterdir()) if (out / "runs").exists() else []
        return ([r for r in runs if (r / "summary.json").exists()],
                [r for r in runs if (r / "log.json").exists() and not (r / "summary.json").exists()])
    deadline = time.time() + 400
    while not (out / "sweep.json").exists() and driver.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    second = subprocess.Popen([sys.executable, "-m", "repro.sweep", "--resume", str(out)], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # while the first runs
    while time.time() < deadline and driver.poll() is None:
        finished, started = state()
        if finished and started:
            break
        time.sleep(0.05)
    os.killpg(driver.pid, signal.SIGINT)  # Ctrl-C in the terminal: the driver and what it started
    stdout, stderr = driver.communicate(timeout=120)
    finished, started = state()
    assert finished and started, "the sweep ended before it could be interrupted mid-way"
    assert second.wait(timeout=120) == 1
    assert second.stderr.read().strip().splitlines()[-1].startswith(f"{out} is in use by process ")
    assert driver.returncode == 1
    assert (f"sweep {out}: {len(finished)} of 3 trials finished, 0 failed, {3 - len(finished)} not finished "
            "(interrupted or not started)") in stdout
    assert any(line.endswith(f"python -m repro.sweep --resume {out}") for line in stdout.splitlines())
    assert "Tuner.restore" not in stdout + stderr
    time.sleep(3)  # Ray's workers notice their driver is gone and exit

    done = sweep(["--resume", str(out), "--cpus-per-trial", "2", "--max-concurrent", "2"])
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
    spec = json.loads((out / "sweep.json").read_text())
    assert spec["resources"]["cpu"] == 2 and spec["max_concurrent"] == 2
    first, resumed = sorted(p.name for p in (out / "tune").iterdir())
    assert {row["ray_cpus"] for row in tune_rows(out, first)} == {1}
    assert {row["ray_cpus"] for row in tune_rows(out, resumed)} == {2}
