"""Every train.py runs as a script from the repository root (as the READMEs say) and its --help
lists the paper's defaults; a second run with --resume from the command line extends a run."""
import subprocess
import sys

import pytest

from conftest import REPO


@pytest.mark.parametrize("script,default", [
    ("psMNIST/train.py", "30.65"), ("noisy_cifar/train.py", "0.00314"),
    ("eigenworms/train.py", "0.0076"), ("healthcare/train.py", "0.00398"),
    ("imdb/train.py", "0.000164")])
def test_script_help_shows_paper_defaults(script, default):
    done = subprocess.run([sys.executable, script, "--help"], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert default in done.stdout and "--resume RUN_DIR" in done.stdout


def test_psmnist_script_runs_and_resumes_from_the_command_line(tmp_path):
    from tiny_data import write_mnist
    write_mnist(tmp_path, n_train=60, n_test=20)
    run = tmp_path / "run"
    base = [sys.executable, "psMNIST/train.py", "--no-progress"]
    first = subprocess.run(base + ["--data-dir", str(tmp_path), "--cache-dir", str(tmp_path / "c"),
                                   "--valid-size", "10", "--nhid", "4",
                                   "--nlayers", "1", "--max-train-batches", "1", "--epochs", "1",
                                   "--device", "cpu", "--out-dir", str(run)],
                           cwd=REPO, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    second = subprocess.run(base + ["--resume", str(run), "--epochs", "2"], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    assert "resuming" in second.stdout and "epoch    2" in second.stdout
