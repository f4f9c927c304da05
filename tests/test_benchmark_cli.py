"""The speed benchmark runs end to end on the CPU (compiled path beside the PyTorch-loop baseline)
and writes its table, JSON and figure; its GPU table and figure are checked on synthetic rows, so a
formatting error cannot waste GPU time."""
import json

from benchmarks import speed


def test_speed_benchmark_writes_json_and_plot(tmp_path, capsys):
    out, png = tmp_path / "speed.json", tmp_path / "speed.png"
    speed.main(["--device", "cpu", "--sizes", "30,2,8", "12,1,3", "--repeats", "2",
                "--out", str(out), "--plot", str(png)])
    report = json.loads(out.read_text())
    assert report["card"] == "CPU" and len(report["results"]) == 2 and report["threads"] >= 1
    for row in report["results"]:
        assert all(row[k]["ms"] > 0 for k in ("cpu_compiled", "cpu_torch_loop", "autograd_loop", "lstm"))
    assert png.stat().st_size > 1000
    printed = capsys.readouterr().out
    assert "old/ours" in printed and "LSTM/ours" in printed


def test_gpu_table_and_figure_on_synthetic_rows(tmp_path, capsys):
    rows = []
    for n, ms in ((1000, 0.5), (784, 0.3)):
        row = {"N": n, "batch": 32, "hidden": 256, "bytes_floor_ms": 0.2, "output_bytes": 10 ** 6}
        for k in (1, 2, 4, 8, 16):
            row[f"kernel_K{k}"] = {"ms": ms * (1 + 1 / k), "peak_bytes": 2 * 10 ** 6}
        row["lstm"] = {"ms": 50.0, "peak_bytes": 10 ** 8}
        row["autograd_loop"] = {"ms": 300.0, "peak_bytes": 10 ** 9}
        rows.append(row)
    attributes = {k: {"unicornn_forward": {"num_regs": 40, "local_size_bytes": 0},
                      "unicornn_backward": {"num_regs": 60, "local_size_bytes": 8}} for k in (1, 16)}
    speed.print_table(rows, "NVIDIA H100", attributes)
    printed = capsys.readouterr().out
    assert "kernel_K16" in printed and "ours/floor" in printed and "K=16" in printed and "8 B local" in printed
    assert speed.ours(rows[0]) == ("kernel_K16", 0.5 * (1 + 1 / 16))
    speed.plot(rows, "NVIDIA H100", tmp_path / "gpu.png")
    assert (tmp_path / "gpu.png").stat().st_size > 1000


def test_train_step_benchmark_runs(tmp_path, capsys, monkeypatch):
    from benchmarks import train_step
    for task, (n, features, classes, batches) in list(train_step.SHAPES.items()):
        monkeypatch.setitem(train_step.SHAPES, task, (12, features, classes, batches))  # short sequences
    rows = train_step.main(["--device", "cpu", "--steps", "1", "--out", str(tmp_path / "t.json")])
    assert [r["task"] for r in rows] == list(train_step.SHAPES)
    assert all(r["compiled"] > 0 and r["torch_loop"] > 0 for r in rows)
    assert "steps/epoch" in capsys.readouterr().out
    only = train_step.main(["--device", "cpu", "--steps", "1", "--tasks", "psMNIST", "--cpu-implementations", "compiled",
                            "--out", str(tmp_path / "t1.json")])
    assert [sorted(r) for r in only] == [["batches_per_epoch", "compiled", "task"]]


def test_revision_comparison_measures_both_trees(tmp_path, capsys):
    from benchmarks import compare_revisions
    rows = compare_revisions.main(["--base", "HEAD", "--sizes", "20,1,4", "--rounds", "2", "--repeats", "1",
                                   "--reuse-freed-memory", "--out", str(tmp_path / "c.json")])
    assert len(rows) == 1 and len(rows[0]["base_all_ms"]) == len(rows[0]["this_all_ms"]) == 2
    assert rows[0]["base_ms"] > 0 and rows[0]["this_ms"] > 0 and rows[0]["paired_ratio"] > 0
    assert "this/base" in capsys.readouterr().out
    saved = json.loads((tmp_path / "c.json").read_text())
    assert saved["base"] == "HEAD" and saved["reuse_freed_memory"] is True


def test_epoch_timing_runs_real_epochs_side_by_side(tmp_path, capsys):
    """Two psMNIST train.py runs at once on tiny idx files: every epoch's training and evaluation
    seconds come from the runs' own logs and add up to the epoch's."""
    from benchmarks import epoch_time
    from tiny_data import write_mnist
    data = write_mnist(tmp_path / "mnist", n_train=40, n_test=10)
    rows = epoch_time.main(["--data-dir", str(data), "--epochs", "2", "--beside", "1", "--max-train-batches", "1",
                            "--out", str(tmp_path / "e.json"), "--", "--nhid", "4", "--nlayers", "1",
                            "--valid-size", "8", "--test-batch", "5"])
    assert sorted((r["run"], r["epoch"]) for r in rows) == [(0, 1), (0, 2), (1, 1), (1, 2)]
    for r in rows:
        assert r["train_seconds"] > 0 and r["eval_seconds"] > 0
        assert abs(r["train_seconds"] + r["eval_seconds"] - r["seconds"]) <= 0.02
    saved = json.loads((tmp_path / "e.json").read_text())
    assert saved["runs_at_once"] == 2 and saved["train_flags"][:2] == ["--nhid", "4"]
    assert "2 run(s) at once" in capsys.readouterr().out
