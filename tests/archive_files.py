"""Tiny .ts files in the time-series archives' real format, for the loader tests."""
import numpy as np


def write_ts(path, x, y, problem, regression):
    """x: (n, channels, length); y: class labels or real targets. The archives' .ts layout."""
    n, channels, length = x.shape
    header = [f"@problemName {problem}", "@timeStamps false", "@missing false",
              f"@univariate {'true' if channels == 1 else 'false'}", f"@dimensions {channels}",
              "@equalLength true", f"@seriesLength {length}"]
    if regression:
        header.append("@targetLabel true")
    else:
        header.append("@classLabel true " + " ".join(sorted({str(v) for v in y})))
    lines = header + ["@data"]
    for series, target in zip(x, y):
        lines.append(":".join(",".join(f"{v:.6f}" for v in ch) for ch in series) + f":{target}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def write_problem(raw_dir, problem, n_train, n_test, channels, length, regression, seed=0):
    """raw_dir/<problem>/<problem>_{TRAIN,TEST}.ts; returns the merged (x, y) as written."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for part, n in (("TRAIN", n_train), ("TEST", n_test)):
        x = rng.normal(size=(n, channels, length)).round(6)
        y = rng.normal(60, 10, n).round(3) if regression else rng.integers(1, 6, n)
        write_ts(raw_dir / problem / f"{problem}_{part}.ts", x, y, problem, regression)
        xs.append(x)
        ys.append(y)
    return np.concatenate(xs), np.concatenate(ys)
