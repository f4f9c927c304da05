"""The epoch loop: non-finite losses stop the run and keep the last good checkpoint, the logged loss
is the mean over the batches run, write failures are reported with what to do, TensorBoard gets
every epoch once, and a run killed by SIGINT, SIGTERM or SIGKILL resumes bit-identically."""
import argparse
import errno
import json
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import REPO
from healthcare import train as health
from psMNIST import train as psmnist
from repro import training
from repro.batching import tensor_batches
from repro.experiment import Task
from repro.metrics import Metric


def strict_json(path):
    def refuse(constant):
        raise AssertionError(f"{path} holds {constant}, which is not JSON")
    return json.loads(path.read_text(), parse_constant=refuse)


def tiny_fit(tmp_path, loss_fn, epochs=3, max_train_batches=None, n=40, batch=8):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    x, y = torch.randn(n, 3), torch.randint(0, 2, (n,))
    batches = tensor_batches(x, y, batch, lambda t: t, shuffle=True, seed=0)
    args = argparse.Namespace(epochs=epochs, out_dir=str(tmp_path / "run"), lr=0.01,
                              max_train_batches=max_train_batches, no_progress=True)
    task = Task("tiny", Metric("accuracy", True, ".1f"))
    return training.fit(args, model, batches, loss_fn, lambda split: 50.0, task), tmp_path / "run"


def test_logged_loss_is_the_mean_over_the_batches_run(tmp_path):
    seen = []

    def loss_fn(out, target):
        loss = torch.nn.functional.cross_entropy(out, target)
        seen.append(loss.item())
        return loss
    tiny_fit(tmp_path, loss_fn, epochs=2, max_train_batches=2)
    log = strict_json(tmp_path / "run" / "log.json")
    assert len(seen) == 4  # 2 of the 5 batches in each epoch
    assert log[0]["train_loss"] == pytest.approx(sum(seen[:2]) / 2)
    assert log[1]["train_loss"] == pytest.approx(sum(seen[2:]) / 2)


def test_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    calls = []

    def loss_fn(out, target):
        calls.append(1)
        loss = torch.nn.functional.cross_entropy(out, target)
        return loss * float("nan") if len(calls) == 7 else loss  # in epoch 2 (5 batches each)
    with pytest.raises(SystemExit, match="training loss.*non-finite in epoch 2.*--lr, --dt, --alpha") as err:
        tiny_fit(tmp_path, loss_fn)
    assert isinstance(err.value, training.Diverged)
    run = tmp_path / "run"
    assert torch.load(run / "checkpoint.pt", weights_only=False)["epoch"] == 1
    assert len(strict_json(run / "log.json")) == 1
    summary = strict_json(run / "summary.json")
    assert summary["status"] == "diverged" and summary["diverged_in_epoch"] == 2
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert [e["event"] for e in history] == ["start", "diverged"] and history[0]["device"] == "cpu"


def test_psmnist_with_a_huge_dt_stops_with_advice(tiny_psmnist, tmp_path):
    with pytest.raises(SystemExit, match="non-finite in epoch 1.*--dt"):
        psmnist.main(tiny_psmnist + ["--dt", "1000", "--epochs", "2", "--out-dir", str(tmp_path / "run")])
    assert strict_json(tmp_path / "run" / "summary.json")["status"] == "diverged"
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_healthcare_summary_is_valid_json_when_rmse_is_nan(tmp_path):
    from tiny_data import write_problem
    write_problem(tmp_path / "data" / "raw", "BIDMC32RR", 20, 5, channels=2, length=30, regression=True)
    with pytest.raises(SystemExit, match="non-finite"):
        health.main(["--data-dir", str(tmp_path / "data"), "--device", "cpu", "--nhid", "4", "--dt", "1e6",
                     "--no-progress", "--epochs", "1", "--out-dir", str(tmp_path / "run")])
    summary = strict_json(tmp_path / "run" / "summary.json")
    assert summary["status"] == "diverged" and summary["test_RR_RMSE"] is None


def test_a_full_disk_is_reported_and_the_last_checkpoint_survives(tmp_path, monkeypatch):
    real_save = torch.save
    saves = []

    def save(obj, f, *a, **k):
        saves.append(1)
        if len(saves) > 2:  # epoch 1 wrote best_model.pt and checkpoint.pt
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *a, **k)
    monkeypatch.setattr(torch, "save", save)
    with pytest.raises(SystemExit, match="could not write .*No space left on device.*--resume"):
        tiny_fit(tmp_path, torch.nn.functional.cross_entropy)
    run = tmp_path / "run"
    monkeypatch.setattr(torch, "save", real_save)
    assert torch.load(run / "checkpoint.pt", weights_only=False)["epoch"] == 1
    assert not list(run.glob("*.tmp"))


def test_stale_temporaries_are_removed_on_resume(tiny_psmnist, tmp_path):
    run = tmp_path / "run"
    psmnist.main(tiny_psmnist + ["--epochs", "1", "--max-train-batches", "1", "--out-dir", str(run)])
    (run / "checkpoint.pt.abc123.tmp").write_bytes(b"half a checkpoint")
    psmnist.main(["--resume", str(run), "--epochs", "2"])
    assert not list(run.glob("*.tmp"))


def test_tensorboard_gets_each_epoch_once_across_a_resume(tiny_psmnist, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    run = tmp_path / "run"
    psmnist.main(tiny_psmnist + ["--epochs", "2", "--max-train-batches", "1", "--out-dir", str(run)])
    psmnist.main(["--resume", str(run), "--epochs", "3"])
    events = EventAccumulator(str(run))
    events.Reload()
    assert set(events.Tags()["scalars"]) >= {"loss/train", "accuracy/valid", "accuracy/test", "lr",
                                             "seconds_per_epoch"}
    assert [e.step for e in events.Scalars("accuracy/valid")] == [1, 2, 3]
    log = strict_json(run / "log.json")
    assert [e.value for e in events.Scalars("accuracy/valid")] == pytest.approx(
        [row["valid_accuracy"] for row in log])


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    """A 6-epoch psMNIST run on 2000 tiny images, uninterrupted: (command, its folder). An epoch
    takes about 0.8 s on 2 cores, so a signal sent after the first leaves seconds to spare even
    on a loaded machine."""
    from tiny_data import write_mnist
    root = tmp_path_factory.mktemp("straight")
    write_mnist(root / "mnist", n_train=2000, n_test=50)
    command = [sys.executable, "psMNIST/train.py", "--data-dir", str(root / "mnist"),
               "--cache-dir", str(root / "cache"), "--valid-size", "50", "--nhid", "32", "--nlayers", "2",
               "--batch", "32", "--test-batch", "100", "--device", "cpu", "--no-progress", "--epochs", "6"]
    subprocess.run(command + ["--out-dir", str(root / "run")], cwd=REPO, check=True, capture_output=True,
                   timeout=300)
    return command, root / "run"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name)
def test_a_killed_run_resumes_bit_identically(tmp_path, sig, straight_run):
    command, straight = straight_run
    killed = tmp_path / "killed"
    # SIGINT is ignored in processes started in the background by a shell (as CI may start this
    # suite), and Python then never raises KeyboardInterrupt: give the run the default disposition.
    process = subprocess.Popen(command + ["--out-dir", str(killed)], cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 300
    while not (killed / "log.json").exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    process.send_signal(sig)
    process.wait(timeout=60)
    assert len(json.loads((killed / "log.json").read_text())) < 6, "finished before the signal"
    resumed = subprocess.run([sys.executable, "psMNIST/train.py", "--resume", str(killed)], cwd=REPO,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    strip = lambda rows: [{k: v for k, v in r.items() if not k.endswith("seconds")} for r in rows]  # noqa: E731
    assert strip(strict_json(killed / "log.json")) == strip(strict_json(straight / "log.json"))
    a, b = torch.load(killed / "best_model.pt"), torch.load(straight / "best_model.pt")
    assert all(torch.equal(a[k], b[k]) for k in b)
