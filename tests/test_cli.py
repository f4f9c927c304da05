"""Flags are checked when parsed (one-line error naming the flag, exit 2, nothing loaded or
written), run folders are unique and never silently reused, and --resume keeps a run's arguments
except --epochs, --device and --no-progress."""
import json
import os
import pathlib
import shutil

import pytest

from conftest import REPO

from psMNIST import train as psmnist
from eigenworms import train as worms
from healthcare import train as health
from imdb import train as imdb
from noisy_cifar import train as cifar
from repro import cli, run_folder
from tiny_data import write_mnist

SCRIPTS = {"psMNIST": psmnist, "noisy_cifar": cifar, "eigenworms": worms, "healthcare": health,
           "imdb": imdb}


def exit_code_and_stderr(capsys, main, argv):
    with pytest.raises(SystemExit) as err:
        main(argv)
    return err.value.code, capsys.readouterr().err


@pytest.mark.parametrize("script", SCRIPTS)
@pytest.mark.parametrize("argv,flag", [
    (["--dt", "0"], "--dt"), (["--dt", "-0.1"], "--dt"), (["--dt", "nan"], "--dt"),
    (["--dt", "inf"], "--dt"), (["--alpha", "-1"], "--alpha"), (["--nhid", "0"], "--nhid"),
    (["--nlayers", "0"], "--nlayers"), (["--batch", "0"], "--batch"), (["--epochs", "0"], "--epochs"),
    (["--lr", "0"], "--lr"), (["--lr", "nan"], "--lr"), (["--dropout", "1.0"], "--dropout"),
    (["--dropout", "-0.1"], "--dropout"), (["--dt", "0.1", "0.2", "0.3", "0.4", "--nlayers", "2"], "--dt"),
    (["--device", "tpu"], "--device"), (["--device", "nonsense"], "--device"),
    (["--device", "cuda:7"], "--device"), (["--seed", "-1"], "--seed"), (["--seed", str(2**32)], "--seed"),
    (["--max-train-batches", "-1"], "--max-train-batches"), (["--max-train-batches", "0"], "--max-train-batches"),
    (["--lr", "fast"], "--lr"),
])
def test_bad_flags_stop_before_anything_loads_or_is_written(script, argv, flag, tmp_path, capsys):
    data_dir, out_dir = tmp_path / "data", tmp_path / "run"
    code, err = exit_code_and_stderr(capsys, SCRIPTS[script].main,
                                     argv + ["--data-dir", str(data_dir), "--out-dir", str(out_dir)])
    assert code == 2 and f"argument {flag}" in err and "Traceback" not in err
    assert not data_dir.exists() and not out_dir.exists()


@pytest.mark.parametrize("script,argv,flag", [
    ("psMNIST", ["--lr-drop-epoch", "0"], "--lr-drop-epoch"), ("psMNIST", ["--reduce-point", "0"], "--lr-drop-epoch"),
    ("psMNIST", ["--test-batch", "0"], "--test-batch"),
    ("psMNIST", ["--valid-size", "0"], "--valid-size"), ("noisy_cifar", ["--lr-step", "0"], "--lr-step"),
    ("healthcare", ["--lr-drop-epoch", "0"], "--lr-drop-epoch"), ("healthcare", ["--name", "XX"], "--name"),
    ("imdb", ["--emb-dropout", "1.0"], "--emb-dropout"), ("imdb", ["--emb-dim", "64"], "--emb-dim"),
    ("imdb", ["--max-vocab", "0"], "--max-vocab"),
])
def test_experiment_flags_are_checked_too(script, argv, flag, tmp_path, capsys):
    code, err = exit_code_and_stderr(capsys, SCRIPTS[script].main, argv + ["--out-dir", str(tmp_path / "r")])
    assert code == 2 and f"argument {flag}" in err


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_shows_every_default_and_no_machine_specific_paths(script, capsys):
    with pytest.raises(SystemExit):
        SCRIPTS[script].main(["--help"])
    out = " ".join(capsys.readouterr().out.split())  # undo line wrapping
    assert "(default: 1234)" in out and "None" not in out
    options = out.split("options:")[1]
    for flag in ("--nhid", "--dt", "--lr", "--epochs", "--seed", "--data-dir", "--device", "--out-dir"):
        assert "default" in options.split(flag + " ")[1].split(" --")[0], flag
    data_help = options.split("--data-dir DATA_DIR")[1].split(" --")[0]
    assert str(pathlib.Path(psmnist.__file__).resolve().parents[1] / "data") in data_help
    assert "shared" not in out and "--resume RUN_DIR" in out


def test_psmnist_help_names_the_epochs_rule(capsys):
    with pytest.raises(SystemExit):
        psmnist.main(["--help"])
    assert "(default: 4 x the lr drop epoch = 2600" in " ".join(capsys.readouterr().out.split())


def test_default_run_folders_are_unique_within_one_microsecond(tmp_path, monkeypatch):
    monkeypatch.setattr(run_folder, "timestamp", lambda: "20261129-120000-000001")
    made = [run_folder.RunFolder.create_unique(tmp_path).path for _ in range(3)]
    assert len(set(made)) == 3 and all(p.is_dir() for p in made)


def test_two_runs_started_together_get_their_own_folders(tiny_psmnist, tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "RESULTS_ROOT", tmp_path / "results")
    monkeypatch.setattr(run_folder, "timestamp", lambda: "20261129-120000-000001")
    for seed in ("1", "2"):
        psmnist.main(tiny_psmnist + ["--epochs", "1", "--max-train-batches", "1", "--seed", seed])
    runs = sorted((tmp_path / "results" / "psMNIST").iterdir())
    assert [json.loads((r / "args.json").read_text())["seed"] for r in runs] == [1, 2]


def test_default_run_folder_is_under_the_repository_not_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(run_folder.RunFolder, "create_unique", classmethod(lambda cls, parent: cls(parent / "x")))
    args = psmnist.EXPERIMENT.start_run([])
    assert pathlib.Path(args.out_dir) == pathlib.Path(psmnist.__file__).resolve().parents[1] / "results" / "psMNIST" / "x"


def test_parsing_makes_no_folder(tmp_path, monkeypatch):
    """Parsing only parses: the run folder is made when the run starts (it used to be made by
    cli.parse_args, so code that only wanted the arguments left empty run folders behind)."""
    monkeypatch.setattr(cli, "RESULTS_ROOT", tmp_path / "results")
    args = cli.parse_args(psmnist.build_parser(), [], experiment="psMNIST", task="psMNIST")
    assert args.out_dir is None and not (tmp_path / "results").exists()
    for name, script in SCRIPTS.items():
        _, args = script.EXPERIMENT.parse_args(["--out-dir", str(tmp_path / name)])
        assert args.out_dir == str(tmp_path / name) and not (tmp_path / name).exists()
    args = psmnist.EXPERIMENT.start_run([])
    assert pathlib.Path(args.out_dir).parent == tmp_path / "results" / "psMNIST"
    assert pathlib.Path(args.out_dir).is_dir()


def test_an_existing_run_is_refused_without_resume(tiny_psmnist, tmp_path, capsys):
    run = tmp_path / "run"
    psmnist.main(tiny_psmnist + ["--epochs", "1", "--max-train-batches", "1", "--out-dir", str(run)])
    code, err = exit_code_and_stderr(capsys, psmnist.main,
                                     tiny_psmnist + ["--lr", "0.01", "--out-dir", str(run)])
    assert code == 2 and "already holds a run" in err and f"--resume {run}" in err and "another --out-dir" in err
    assert json.loads((run / "args.json").read_text())["lr"] == 0.00251


def test_args_json_describes_the_rerun_after_a_failed_start(tiny_psmnist, tmp_path, monkeypatch):
    """A start that failed before its first epoch leaves args.json only; a corrected rerun into the
    same folder records the new values (it used to keep the old ones)."""
    run = tmp_path / "run"
    monkeypatch.setattr(psmnist.training, "fit", lambda args, *a, **k: (
        run_folder.RunFolder(args.out_dir).write_args(args), (_ for _ in ()).throw(RuntimeError("boom"))))
    with pytest.raises(RuntimeError):
        psmnist.main(tiny_psmnist + ["--epochs", "1", "--lr", "0.5", "--out-dir", str(run)])
    monkeypatch.undo()
    psmnist.main(tiny_psmnist + ["--epochs", "1", "--max-train-batches", "1", "--lr", "0.002",
                                 "--out-dir", str(run)])
    assert json.loads((run / "args.json").read_text())["lr"] == 0.002


@pytest.fixture
def finished_run(tiny_psmnist, tmp_path):
    run = tmp_path / "run"
    psmnist.main(tiny_psmnist + ["--epochs", "1", "--max-train-batches", "2", "--out-dir", str(run)])
    return run


@pytest.mark.parametrize("epochs_flag", [["--epochs", "2"], ["--epochs=2"], ["--epo", "2"]])
def test_resume_extends_with_any_spelling_of_epochs(finished_run, epochs_flag):
    summary = psmnist.main(["--resume", str(finished_run), "--no-progress"] + epochs_flag)
    assert summary["epochs"] == 2
    assert [r["epoch"] for r in json.loads((finished_run / "log.json").read_text())] == [1, 2]
    assert json.loads((finished_run / "args.json").read_text())["epochs"] == 2


def test_resume_refuses_changed_flags_and_accepts_repeated_ones(finished_run, capsys):
    code, err = exit_code_and_stderr(capsys, psmnist.main,
                                     ["--resume", str(finished_run), "--lr", "0.1", "--nhid=16"])
    assert code == 2 and "--lr 0.1 (run: 0.00251)" in err and "--nhid 16 (run: 8)" in err
    summary = psmnist.main(["--resume", str(finished_run), "--nhid", "8", "--no-progress"])
    assert summary["epochs"] == 1
    code, err = exit_code_and_stderr(capsys, psmnist.main, ["--resume", str(finished_run),
                                                           "--out-dir", str(finished_run.parent / "x")])
    assert code == 2 and "different folders" in err


def test_a_run_saved_before_a_flag_was_renamed_resumes(tmp_path, capsys):
    """tests/data/run-psMNIST-2026-11-30 was written by the code of that day, when --lr-drop-epoch
    was --reduce-point (args.json: "reduce_point": 1). Only its data paths are rewritten to this
    test's copy of the same tiny MNIST files."""
    run = tmp_path / "run"
    shutil.copytree(REPO / "tests" / "data" / "run-psMNIST-2026-11-30", run)
    saved = json.loads((run / "args.json").read_text())
    assert saved["reduce_point"] == 1 and "lr_drop_epoch" not in saved
    saved.update(data_dir=str(write_mnist(tmp_path / "mnist")), cache_dir=str(tmp_path / "cache"))
    (run / "args.json").write_text(json.dumps(saved))
    summary = psmnist.main(["--resume", str(run), "--epochs", "3"])
    log = json.loads((run / "log.json").read_text())
    assert [row["lr"] for row in log] == pytest.approx([0.00251, 0.000251, 0.000251]) and summary["epochs"] == 3
    resumed = json.loads((run / "args.json").read_text())
    assert resumed["lr_drop_epoch"] == 1 and "reduce_point" not in resumed
    code, err = exit_code_and_stderr(capsys, psmnist.main, ["--resume", str(run), "--reduce-point", "2"])
    assert code == 2 and "--lr-drop-epoch 2 (run: 1)" in err
    assert psmnist.main(["--resume", str(run), "--reduce-point", "1", "--no-progress"])["epochs"] == 3


def test_resume_refuses_another_experiments_folder(finished_run, tmp_path, capsys):
    data_dir = tmp_path / "worms-data"
    code, err = exit_code_and_stderr(capsys, worms.main, ["--resume", str(finished_run),
                                                         "--data-dir", str(data_dir)])
    assert code == 2 and "'psMNIST' run" in err and "psMNIST/train.py" in err
    assert not data_dir.exists()


def test_healthcare_resume_refuses_the_other_task(tmp_path, capsys):
    from tiny_data import write_problem
    for problem in ("BIDMC32RR", "BIDMC32HR"):
        write_problem(tmp_path / "data" / "raw", problem, 20, 5, channels=2, length=30, regression=True)
    run = tmp_path / "rr"
    health.main(["--name", "RR", "--data-dir", str(tmp_path / "data"), "--device", "cpu", "--nhid", "4",
                 "--no-progress", "--epochs", "1", "--max-train-batches", "1", "--out-dir", str(run)])
    code, err = exit_code_and_stderr(capsys, health.main, ["--resume", str(run), "--name", "HR"])
    assert code == 2 and "--name HR (run: RR)" in err


def test_extending_noisy_cifar_recomputes_the_lr_drops(tmp_path, monkeypatch):
    import torchvision.datasets.cifar
    from tiny_data import write_cifar
    write_cifar(tmp_path / "data")
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda path, md5=None: os.path.isfile(path))
    run = tmp_path / "run"
    cifar.main(["--data-dir", str(tmp_path / "data"), "--valid-size", "10", "--nhid", "4", "--nlayers", "1",
                "--test-batch", "50", "--device", "cpu", "--no-progress", "--max-train-batches", "1",
                "--lr-step", "2", "--epochs", "2", "--out-dir", str(run)])
    cifar.main(["--resume", str(run), "--epochs", "4", "--no-progress"])
    lrs = [row["lr"] for row in json.loads((run / "log.json").read_text())]
    assert lrs == pytest.approx([0.00314, 0.00314, 0.000314, 0.000314])


@pytest.mark.parametrize("content,problem", [("{not json", "cannot be read as JSON"),
                                             ('{"lr": 0.1}', "lacks"), ("[1, 2]", "does not hold")])
def test_broken_args_json_is_named(finished_run, capsys, content, problem):
    (finished_run / "args.json").write_text(content)
    with pytest.raises(SystemExit) as err:
        psmnist.main(["--resume", str(finished_run)])
    assert problem in str(err.value) and str(finished_run / "args.json") in str(err.value)


def test_resume_of_a_folder_without_a_run(tmp_path):
    with pytest.raises(SystemExit, match="args.json not found"):
        psmnist.main(["--resume", str(tmp_path)])


def test_damaged_checkpoint_is_named_with_what_to_do(finished_run):
    path = finished_run / "checkpoint.pt"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(SystemExit) as err:
        psmnist.main(["--resume", str(finished_run), "--epochs", "2"])
    assert str(path) in str(err.value) and "Delete it" in str(err.value)


def test_out_dir_that_is_a_file_or_not_writable(tiny_psmnist, tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    code, err = exit_code_and_stderr(capsys, psmnist.main, tiny_psmnist + ["--out-dir", str(a_file)])
    assert code == 2 and "is a file" in err
    if os.geteuid() == 0:
        read_only = pathlib.Path("/sys/unicornn-run")  # root may write anywhere else
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        read_only = locked / "run"
    code, err = exit_code_and_stderr(capsys, psmnist.main, tiny_psmnist + ["--out-dir", str(read_only)])
    assert code == 2 and "cannot write the run folder" in err
    assert not list((tmp_path / "cache").glob("*"))  # checked before any data was loaded
