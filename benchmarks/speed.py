"""Forward+backward time and peak memory of one recurrent layer: the UnICORNN kernel (or CPU path),
the PyTorch autograd loop (``reference_recurrence``), and cuDNN LSTM of the same hidden size.

Prints a table, writes benchmarks/results/speed-<card>.json and the bar chart imgs/speed.png.
Times are medians over --repeats runs (CUDA events on the GPU), after a warm-up. The bytes floor
is the time to move x and y (forward) and x, dL/dy, dL/dx (backward) once at the device-to-device
copy bandwidth measured in the same run.

    python benchmarks/speed.py                          # on a GPU machine
    python benchmarks/speed.py --device cpu --sizes 200,8,64 --repeats 3
"""
import argparse
import datetime
import json
import pathlib
import statistics
import sys
import time

import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from unicornn import recurrence, reference_recurrence  # noqa: E402

DEFAULT_SIZES = ["1000,128,256", "2000,128,256", "784,32,256", "1000,256,512"]


def parse_size(text):
    n, b, h = (int(v) for v in text.split(","))
    return n, b, h


def timed(fn, device, repeats):
    """Median seconds of fn() over repeats, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize(device)
            times.append(start.elapsed_time(end) / 1e3)
        else:
            started = time.perf_counter()
            fn()
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def peak_memory(fn, device):
    """Bytes allocated at the peak of fn() beyond what was allocated before (GPU only)."""
    if device.type != "cuda":
        return None
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - before


def copy_bandwidth(device, nbytes=1 << 30):
    """Device-to-device copy bandwidth in bytes/s (read + write counted), GPU only."""
    if device.type != "cuda":
        return None
    src = torch.empty(nbytes // 4, device=device)
    dst = torch.empty_like(src)
    seconds = timed(lambda: dst.copy_(src), device, 10)
    return 2 * nbytes / seconds


def layer_runners(n, batch, hidden, device):
    g = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(n, batch, hidden, generator=g).to(device).requires_grad_()
    w = torch.rand(hidden, generator=g).to(device).requires_grad_()
    c = (torch.rand(hidden, generator=g) * 0.2 - 0.1).to(device).requires_grad_()
    grad = torch.randn(n, batch, hidden, generator=g).to(device)
    lstm = torch.nn.LSTM(hidden, hidden).to(device)

    def step(forward):
        def run():
            x.grad = None
            forward().backward(grad)
        return run

    return {
        "unicornn": step(lambda: recurrence(x, w, c, 0.1, 1.0)),
        "autograd_loop": step(lambda: reference_recurrence(x, w, c, 0.1, 1.0)),
        "lstm": step(lambda: lstm(x)[0]),
    }


def card_name(device):
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"


def plot(results, card, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    labels = [f"({r['N']},{r['batch']},{r['hidden']})" for r in results]
    names = [("unicornn", "UnICORNN (ours)"), ("lstm", "cuDNN LSTM" if card != "CPU" else "LSTM"),
             ("autograd_loop", "PyTorch autograd loop")]
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.27
    for i, (key, label) in enumerate(names):
        ax.bar([j + (i - 1) * width for j in range(len(results))],
               [r[key]["ms"] for r in results], width, label=label)
    ax.set_yscale("log")
    ax.set_xticks(range(len(results)), labels)
    ax.set_xlabel("(sequence length, batch, hidden units)")
    ax.set_ylabel("forward + backward of one layer [ms]")
    ax.set_title(f"One recurrent layer, median time on {card}")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sizes", nargs="+", default=DEFAULT_SIZES, help="N,batch,hidden ...")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", default=None, help="JSON path (default benchmarks/results/speed-<card>.json)")
    parser.add_argument("--plot", default=str(ROOT / "imgs" / "speed.png"))
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    card = card_name(device)
    bandwidth = copy_bandwidth(device)
    results = []
    for n, batch, hidden in map(parse_size, args.sizes):
        row = {"N": n, "batch": batch, "hidden": hidden}
        for name, run in layer_runners(n, batch, hidden, device).items():
            repeats = args.repeats if name != "autograd_loop" else max(3, args.repeats // 5)
            row[name] = {"ms": 1e3 * timed(run, device, repeats), "peak_bytes": peak_memory(run, device)}
        if bandwidth:
            row["bytes_floor_ms"] = 1e3 * 5 * n * batch * hidden * 4 / bandwidth
        results.append(row)

    print(f"\nOne layer, forward+backward, median ms on {card} ({datetime.date.today()})")
    print(f"{'(N, batch, hidden)':>20} {'ours':>9} {'LSTM':>9} {'loop':>9} {'LSTM/ours':>10} "
          f"{'loop/ours':>10} {'floor':>7} {'mem ours/LSTM':>14}")
    for r in results:
        ours, lstm, loop = r["unicornn"]["ms"], r["lstm"]["ms"], r["autograd_loop"]["ms"]
        mem = (f"{r['unicornn']['peak_bytes'] / r['lstm']['peak_bytes']:.3f}"
               if r["lstm"]["peak_bytes"] else "-")
        floor = f"{r['bytes_floor_ms']:.3f}" if "bytes_floor_ms" in r else "-"
        print(f"{str((r['N'], r['batch'], r['hidden'])):>20} {ours:9.3f} {lstm:9.3f} {loop:9.2f} "
              f"{lstm / ours:10.1f} {loop / ours:10.1f} {floor:>7} {mem:>14}")
    out = pathlib.Path(args.out or ROOT / "benchmarks" / "results" /
                       f"speed-{card.replace(' ', '_')}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"card": card, "date": str(datetime.date.today()),
                               "torch": torch.__version__, "copy_bandwidth_bytes_per_s": bandwidth,
                               "results": results}, indent=2))
    plot(results, card, pathlib.Path(args.plot))
    print(f"wrote {out} and {args.plot}")
    return results


if __name__ == "__main__":
    main()
