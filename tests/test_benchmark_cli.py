"""The speed benchmark runs end to end (on the CPU here) and writes its table, JSON and figure."""
import json

from benchmarks import speed


def test_speed_benchmark_writes_json_and_plot(tmp_path, capsys):
    out, png = tmp_path / "speed.json", tmp_path / "speed.png"
    speed.main(["--device", "cpu", "--sizes", "30,2,8", "12,1,3", "--repeats", "2",
                "--out", str(out), "--plot", str(png)])
    report = json.loads(out.read_text())
    assert report["card"] == "CPU" and len(report["results"]) == 2
    for row in report["results"]:
        assert all(row[k]["ms"] > 0 for k in ("unicornn", "autograd_loop", "lstm"))
    assert png.stat().st_size > 1000
    assert "LSTM/ours" in capsys.readouterr().out
