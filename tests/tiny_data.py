"""Tiny data sets written in the real on-disk formats (MNIST idx, CIFAR-10 pickles, archive .ts files,
an aclImdb tree and a GloVe text file), for the loader, script and sweep tests."""
import gzip
import pickle

import numpy as np

CIFAR_LABELS = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
POS = ["A great film.<br />Loved it!", "Great acting , great story", "I loved this movie",
       "Wonderful and great", "great great fun", "Loved the music"]
NEG = ["A terrible film.<br />Hated it!", "Bad acting , bad story", "I hated this movie",
       "Awful and bad", "bad bad boring", "Hated the music"]


def write_idx(path, array, gz):
    """The MNIST idx format: magic (0, 0, type 0x08 = ubyte, ndim), big-endian dims, then data."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)
    return path


def write_mnist(folder, n_train=120, n_test=30, gz=True, seed=0):
    """The four MNIST idx files (random pixels, labels 0..9 in turn) in ``folder``."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)), gz)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10, gz)
    return folder


def write_cifar(root, n_train_batch=20, n_test=15):
    """root/cifar-10-batches-py/ with 5 training batches and a test batch, keys as the real pickles."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        n = n_test if name == "test_batch" else n_train_batch
        batch = {"batch_label": name, "labels": [int(v) for v in rng.integers(0, 10, n)],
                 "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 "filenames": [f"{i}.png" for i in range(n)]}
        (folder / name).write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(pickle.dumps(
        {"label_names": CIFAR_LABELS, "num_cases_per_batch": n_train_batch, "num_vis": 3072}))
    return root


def write_imdb(root, glove_dim=50):
    """root/aclImdb/{train,test}/{pos,neg}/*.txt and root/glove/glove.6B.<dim>d.txt."""
    for split in ("train", "test"):
        for sentiment, texts in (("pos", POS), ("neg", NEG)):
            folder = root / "aclImdb" / split / sentiment
            folder.mkdir(parents=True)
            for i, text in enumerate(texts):
                (folder / f"{i}_{7 if sentiment == 'pos' else 2}.txt").write_text(text)
    glove = root / "glove"
    glove.mkdir()
    rows = {"great": 0.5, "bad": -0.5, "film": 0.1, ".": 0.0, "the": 0.2}
    (glove / f"glove.6B.{glove_dim}d.txt").write_text(
        "".join(f"{token} " + " ".join([str(v)] * glove_dim) + "\n" for token, v in rows.items()))
    return root


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
