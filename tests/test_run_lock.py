"""One process at a time in a run folder: two train.py started at once with one --out-dir, or a
--resume of a run that is still training, are refused with one line; a killed run's lock goes with
its process (the SIGKILL case of test_training_loop's kill-and-resume test resumes through it); a
retried sweep trial waits for the lock of an attempt that is still ending."""
import json
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import REPO


def train(flags, **kwargs):
    return subprocess.Popen([sys.executable, "psMNIST/train.py"] + flags, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def events(run):
    return [json.loads(line)["event"] for line in (run / "history.jsonl").read_text().splitlines()]


def test_two_runs_started_at_once_into_one_folder_one_is_refused(tiny_psmnist, tmp_path):
    run = tmp_path / "run"
    both = [train(tiny_psmnist + ["--epochs", "2", "--out-dir", str(run)]) for _ in range(2)]
    outcomes = [(p.wait(timeout=300), p.stderr.read()) for p in both]
    assert sorted(code for code, _ in outcomes) == [0, 1], outcomes
    refusal = next(err for code, err in outcomes if code == 1).strip()
    assert len(refusal.splitlines()) == 1 and "Traceback" not in refusal
    assert f"{run} is in use by process" in refusal or f"{run} already holds a run" in refusal
    assert events(run) == ["start", "finished"]
    assert [row["epoch"] for row in json.loads((run / "log.json").read_text())] == [1, 2]


def test_resuming_a_run_that_still_trains_is_refused_until_it_is_killed(tiny_psmnist, tmp_path):
    run = tmp_path / "run"
    first = train(tiny_psmnist + ["--epochs", "300", "--out-dir", str(run)])
    deadline = time.time() + 300
    while not (run / "log.json").exists() and first.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    second = subprocess.run([sys.executable, "psMNIST/train.py", "--resume", str(run)], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    still_training = first.poll() is None
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert still_training, "the first run ended before the second one was refused"
    assert second.returncode == 1 and second.stderr.strip().splitlines() == [
        f"{run} is in use by process {first.pid} on {socket.gethostname()}; a run folder "
        "takes one process at a time. Wait until it ends, or choose another --out-dir."]
    done = len(json.loads((run / "log.json").read_text()))
    resumed = subprocess.run([sys.executable, "psMNIST/train.py", "--resume", str(run), "--epochs", str(done + 1)],
                             cwd=REPO, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert [row["epoch"] for row in json.loads((run / "log.json").read_text())] == list(range(1, done + 2))
    assert events(run) == ["start", "resume", "finished"]


def test_a_retried_trial_waits_for_the_lost_attempt_to_let_go(tmp_path):
    from repro import folder_lock
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom repro import folder_lock\n"
                               f"with folder_lock.hold({str(tmp_path)!r}, 'run folder'):\n"
                               "    print('held', flush=True)\n    time.sleep(3)"],
                              cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline() == "held\n"
    with pytest.raises(folder_lock.FolderInUse, match=f"{tmp_path} is in use by process {holder.pid} on "):
        with folder_lock.hold(tmp_path, "run folder"):
            pass
    with folder_lock.hold(tmp_path, "run folder", wait_s=120):  # taken once the holder lets go
        assert holder.wait(timeout=60) == 0
        with folder_lock.hold(tmp_path, "run folder"):  # the same process may take it again
            pass
