"""Is this working tree slower than an earlier revision? Forward+backward of one layer on the CPU path
(``unicornn.recurrence``, the default implementation), the two trees measured side by side in one run.

Each round is a fresh process that imports both trees' ``unicornn`` (the base tree's as
``unicornn_base``, its custom ops renamed so both can be registered) and alternates calls to the two
(A B, B A, ...) for --repeats calls each after a warm-up. On this shared 2-core machine a single
process runs in one of two speeds, ~20% apart, for its whole life; in one process both trees share
it, so their ratio within a round is the statistic that speed does not touch. Reports per size the
median over rounds of each tree's median call and of the within-round ratios. Prints a table and
writes JSON.

    python benchmarks/compare_revisions.py --base 47a00b3 --sizes 17984,8,32 784,32,256 1000,128,256
"""
import argparse
import datetime
import io
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tarfile
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
BASE_PACKAGE = "unicornn_base"

CHILD = r"""
import json, statistics, sys, time, torch
n, batch, hidden, repeats = map(int, sys.argv[1:5])
if sys.argv[5] == "reuse":  # train.py's CPU memory setting, for both trees alike
    from repro.cpu_memory import reuse_freed_memory
    assert reuse_freed_memory()
sys.path.insert(0, sys.argv[6])
import unicornn, unicornn_base
g = torch.Generator().manual_seed(0)
x = torch.randn(n, batch, hidden, generator=g).requires_grad_()
w = torch.rand(hidden, generator=g).requires_grad_()
c = (torch.rand(hidden, generator=g) * 0.2 - 0.1).requires_grad_()
grad = torch.randn(n, batch, hidden, generator=g)
trees = [("base", unicornn_base), ("this", unicornn)]
times = {name: [] for name, _ in trees}
for i in range(repeats + 1):
    for name, package in (trees if i % 2 == 0 else trees[::-1]):
        started = time.perf_counter()
        package.recurrence(x, w, c, 0.1, 1.0).backward(grad)
        if i:  # the first call of each is the warm-up
            times[name].append(time.perf_counter() - started)
print(json.dumps({"ms": {name: 1e3 * statistics.median(t) for name, t in times.items()},
                  "files": [unicornn_base.__file__, unicornn.__file__]}))
"""


def export(revision, folder):
    """The tree of ``revision`` (git archive) unpacked into ``folder``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision], capture_output=True, check=True).stdout
    tarfile.open(fileobj=io.BytesIO(archive)).extractall(folder, filter="data")
    return pathlib.Path(folder)


def base_package(tree, folder):
    """The base tree's ``unicornn`` copied to ``folder/unicornn_base`` with its custom ops in the
    ``unicornn_base`` namespace (the package imports itself relatively); returns ``folder``."""
    target = pathlib.Path(folder) / BASE_PACKAGE
    for source in (tree / "unicornn").rglob("*.py"):
        copy = target / source.relative_to(tree / "unicornn")
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_text(source.read_text().replace('"unicornn::', f'"{BASE_PACKAGE}::'))
    return pathlib.Path(folder)


def measure(packages, size, repeats, reuse_freed_memory=False):
    """One round: {"base": ms, "this": ms}, medians of interleaved calls in one fresh process."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    memory_setting = "reuse" if reuse_freed_memory else "default"
    done = subprocess.run([sys.executable, "-c", CHILD, *map(str, size), str(repeats), memory_setting, str(packages)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"measurement failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["files"][0].startswith(str(packages)) and result["files"][1].startswith(str(ROOT)), result
    return result["ms"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="the git revision to compare against")
    parser.add_argument("--sizes", nargs="+", default=["17984,8,32", "784,32,256", "1000,128,256"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--reuse-freed-memory", action="store_true",
                        help="time with malloc reusing freed memory, as train.py does on the CPU (repro.cpu_memory);"
                             " without it, first touches of fresh pages make single timings bimodal")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "compare_revisions-cpu.json"))
    args = parser.parse_args(argv)
    sizes = [tuple(int(v) for v in s.split(",")) for s in args.sizes]
    with tempfile.TemporaryDirectory() as scratch:
        packages = base_package(export(args.base, pathlib.Path(scratch) / "tree"), pathlib.Path(scratch) / "packages")
        measure(packages, (2, 1, 1), 1)  # compile or load both trees' Numba caches before timing
        times = {(name, size): [] for name in ("base", "this") for size in sizes}
        for _ in range(args.rounds):
            for size in sizes:
                for name, ms in measure(packages, size, args.repeats, args.reuse_freed_memory).items():
                    times[name, size].append(ms)
    # within a round both trees ran in one process, interleaved: their ratio is the comparison least touched by noise
    rows = [{"N": s[0], "batch": s[1], "hidden": s[2], "base_ms": statistics.median(times["base", s]),
             "this_ms": statistics.median(times["this", s]),
             "paired_ratio": statistics.median(t / b for t, b in zip(times["this", s], times["base", s])),
             "base_all_ms": times["base", s], "this_all_ms": times["this", s]} for s in sizes]
    print(f"\nOne layer on the CPU path, forward+backward, median ms over {args.rounds} rounds (processes) "
          f"of {args.repeats} interleaved calls per tree ({datetime.date.today()}); base = {args.base}"
          f"{'; malloc reuses freed memory' if args.reuse_freed_memory else ''}")
    print(f"{'(N, batch, hidden)':>20} {'base':>10} {'this tree':>10} {'this/base':>10} {'per round':>10}")
    for r in rows:
        print(f"{str((r['N'], r['batch'], r['hidden'])):>20} {r['base_ms']:10.2f} {r['this_ms']:10.2f} "
              f"{r['this_ms'] / r['base_ms']:10.3f} {r['paired_ratio']:10.3f}")
    print("(per round: the median over rounds of this/base within one round)")
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"base": args.base, "date": str(datetime.date.today()), "rounds": args.rounds,
                               "repeats": args.repeats,
                               "method": "both trees in each round's process, calls interleaved",
                               "reuse_freed_memory": args.reuse_freed_memory, "rows": rows}, indent=2))
    print(f"wrote {out}")
    return rows


if __name__ == "__main__":
    main()
