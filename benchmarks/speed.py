"""Forward+backward time and peak memory of one recurrent layer, every implementation side by side in
one run: on the GPU the UnICORNN kernel at every prefetch depth K, on the CPU the compiled CPU path
and the PyTorch-loop CPU path it replaced (the baseline); then the PyTorch autograd loop
(``reference_recurrence``) and an LSTM of the same hidden size (cuDNN on the GPU).

Prints a table, writes benchmarks/results/speed-<card>.json and the bar chart imgs/speed.png.
Times are medians over --repeats runs (CUDA events on the GPU), after a warm-up. The bytes floor is
the time to move x and y (forward) and x, dL/dy, dL/dx (backward) once at the device-to-device copy
bandwidth measured in the same run. On the GPU it also prints each compiled kernel's registers and
local-memory (spill) bytes per thread.

    python benchmarks/speed.py                          # on a GPU machine: every K
    python benchmarks/speed.py --device cpu --sizes 17984,8,32 784,32,256 1000,128,256 --repeats 5
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

from unicornn import DEFAULT_CKPT_EVERY, cpu_implementation, cuda_kernel, recurrence, reference_recurrence  # noqa: E402

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


def layer_runners(n, batch, hidden, device, prefetch_depths):
    """{name: fn} running forward+backward of one layer; "ours" variants first."""
    g = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(n, batch, hidden, generator=g).to(device).requires_grad_()
    w = torch.rand(hidden, generator=g).to(device).requires_grad_()
    c = (torch.rand(hidden, generator=g) * 0.2 - 0.1).to(device).requires_grad_()
    grad = torch.randn(n, batch, hidden, generator=g).to(device)
    lstm = torch.nn.LSTM(hidden, hidden).to(device)

    def step(forward, implementation=None):
        def run():
            x.grad = None
            if implementation:
                with cpu_implementation(implementation):
                    forward().backward(grad)
            else:
                forward().backward(grad)
        return run

    if device.type == "cuda":
        runners = {f"kernel_K{k}": step(lambda k=k: recurrence(x, w, c, 0.1, 1.0, prefetch=k))
                   for k in prefetch_depths}
    else:
        runners = {"cpu_compiled": step(lambda: recurrence(x, w, c, 0.1, 1.0), "compiled"),
                   "cpu_torch_loop": step(lambda: recurrence(x, w, c, 0.1, 1.0), "torch_loop")}
    runners["autograd_loop"] = step(lambda: reference_recurrence(x, w, c, 0.1, 1.0))
    runners["lstm"] = step(lambda: lstm(x)[0])
    return runners


def kernel_attributes(device, prefetch_depths):
    """{K: {kernel name: registers and local (spill) bytes per thread}} of the compiled modules."""
    return {k: cuda_kernel.function_attributes(device, k) for k in prefetch_depths}


def card_name(device):
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"


def ours(row):
    """(name, ms) of the fastest of our implementations in a result row."""
    mine = {k: v["ms"] for k, v in row.items() if isinstance(v, dict) and k.startswith(("kernel_", "cpu_compiled"))}
    name = min(mine, key=mine.get)
    return name, mine[name]


def plot(results, card, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    labels = [f"({r['N']},{r['batch']},{r['hidden']})" for r in results]
    series = [("ours", "UnICORNN (ours" + (", best K)" if card != "CPU" else ", compiled CPU path)"))]
    if card == "CPU":
        series.append(("cpu_torch_loop", "UnICORNN, PyTorch-loop CPU path"))
    series += [("lstm", "cuDNN LSTM" if card != "CPU" else "LSTM"), ("autograd_loop", "PyTorch autograd loop")]
    fig, ax = plt.subplots(figsize=(8.5, 4.2))
    width = 0.8 / len(series)
    for i, (key, label) in enumerate(series):
        values = [ours(r)[1] if key == "ours" else r[key]["ms"] for r in results]
        ax.bar([j + (i - (len(series) - 1) / 2) * width for j in range(len(results))], values, width, label=label)
    ax.set_yscale("log")
    ax.set_xticks(range(len(results)), labels)
    ax.set_xlabel("(sequence length, batch, hidden units)")
    ax.set_ylabel("forward + backward of one layer [ms]")
    ax.set_title(f"One recurrent layer, median time on {card}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def print_table(results, card, attributes):
    print(f"\nOne layer, forward+backward, median ms on {card} ({datetime.date.today()})")
    gpu = card != "CPU"
    head = f"{'(N, batch, hidden)':>20} {'ours':>9} {'best':>14}"
    if gpu:
        ks = [k for k in results[0] if k.startswith("kernel_K")]
        head += "".join(f"{k[7:]:>8}" for k in ks) + f" {'floor':>7} {'ours/floor':>10} {'mem/out':>8}"
    else:
        head += f" {'old CPU':>9} {'old/ours':>9}"
    print(head + f" {'LSTM':>9} {'loop':>9} {'LSTM/ours':>10} {'loop/ours':>10}")
    for r in results:
        name, ms = ours(r)
        line = f"{str((r['N'], r['batch'], r['hidden'])):>20} {ms:9.3f} {name:>14}"
        if gpu:
            line += "".join(f"{r[k]['ms']:8.3f}" for k in ks)
            line += f" {r['bytes_floor_ms']:7.3f} {ms / r['bytes_floor_ms']:10.2f}"
            line += f" {r[name]['peak_bytes'] / r['output_bytes']:8.2f}"
        else:
            line += f" {r['cpu_torch_loop']['ms']:9.2f} {r['cpu_torch_loop']['ms'] / ms:9.1f}"
        line += (f" {r['lstm']['ms']:9.3f} {r['autograd_loop']['ms']:9.2f} {r['lstm']['ms'] / ms:10.1f}"
                 f" {r['autograd_loop']['ms'] / ms:10.1f}")
        print(line)
    if gpu:
        print("mem/out: peak memory of ours / (y + dL/dx + chunk states); 'floor': bytes moved at copy bandwidth")
        for k, kernels in attributes.items():
            print(f"K={k:<3} " + "  ".join(f"{name}: {a['num_regs']} registers, {a['local_size_bytes']} B local"
                                        for name, a in kernels.items()))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sizes", nargs="+", default=DEFAULT_SIZES, help="N,batch,hidden ...")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--prefetch", type=int, nargs="+", default=list(cuda_kernel.PREFETCH_DEPTHS),
                        help="prefetch depths K of the CUDA kernel to time (GPU only)")
    parser.add_argument("--out", default=None, help="JSON path (default benchmarks/results/speed-<card>.json)")
    parser.add_argument("--plot", default=str(ROOT / "imgs" / "speed.png"))
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    card = card_name(device)
    bandwidth = copy_bandwidth(device)
    results = []
    for n, batch, hidden in map(parse_size, args.sizes):
        row = {"N": n, "batch": batch, "hidden": hidden}
        for name, run in layer_runners(n, batch, hidden, device, args.prefetch).items():
            repeats = args.repeats if name not in ("autograd_loop", "cpu_torch_loop") else max(3, args.repeats // 5)
            row[name] = {"ms": 1e3 * timed(run, device, repeats), "peak_bytes": peak_memory(run, device)}
        chunks = -(-n // DEFAULT_CKPT_EVERY)
        row["output_bytes"] = 4 * batch * hidden * (2 * n + 2 * chunks)  # y, dL/dx, chunk states
        if bandwidth:
            row["bytes_floor_ms"] = 1e3 * 5 * n * batch * hidden * 4 / bandwidth
        results.append(row)
    attributes = kernel_attributes(device, args.prefetch) if device.type == "cuda" else {}
    print_table(results, card, attributes)
    out = pathlib.Path(args.out or ROOT / "benchmarks" / "results" / f"speed-{card.replace(' ', '_')}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"card": card, "date": str(datetime.date.today()), "torch": torch.__version__,
                               "threads": torch.get_num_threads(), "copy_bandwidth_bytes_per_s": bandwidth,
                               "kernel_attributes": attributes, "results": results}, indent=2))
    plot(results, card, pathlib.Path(args.plot))
    print(f"wrote {out} and {args.plot}")
    return results


if __name__ == "__main__":
    main()
