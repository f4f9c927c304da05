"""The compiled CPU path: its vectorisable float32 tanh is as accurate as libm's tanhf, tiles of
every size cover all columns exactly once, it follows torch's thread count, and without Numba the
CPU path falls back to the PyTorch loop with one warning."""
import json
import math
import os
import shutil
import subprocess
import sys

import numba
import numpy as np
import pytest
import torch

from conftest import REPO, max_rel_errs, random_problem
from unicornn import cpu_compiled, torch_loop


@numba.njit(error_model="numpy")
def _apply_tanh(x, out):
    for i in range(x.size):
        out[i] = cpu_compiled._tanh(x[i])


def ulps(got, x):
    truth = np.tanh(x.astype(np.float64))
    return np.abs(got.astype(np.float64) - truth) / np.spacing(np.abs(truth).astype(np.float32)).astype(np.float64)


def test_float32_tanh_is_as_accurate_as_libm():
    bits = np.arange(0, np.float32(12).view(np.int32), 97, dtype=np.int32)  # 11 million float32 in [0, 12)
    x = np.concatenate([bits.view(np.float32), -bits.view(np.float32)])
    out = np.empty_like(x)
    _apply_tanh(x, out)
    error = ulps(out, x)
    # measured: 1.27 ulp at most (near 0.65), 0.03 on average; NumPy's float32 tanh (libm's tanhf)
    # reaches 1.37 ulp on the same grid
    assert error.max() <= 1.5 and error.mean() <= 0.05, (error.max(), x[error.argmax()], error.mean())
    assert error.max() <= ulps(np.tanh(x), x).max()
    special = np.array([0.0, -0.0, 1e-38, -1e-30, 9.0, 20.0, -80.0, np.inf, -np.inf, np.nan], np.float32)
    out = np.empty_like(special)
    _apply_tanh(special, out)
    expected = np.tanh(special.astype(np.float64)).astype(np.float32)
    assert np.array_equal(out, expected, equal_nan=True) and np.signbit(out[1])


def test_float64_uses_libm_tanh():
    x = np.linspace(-5, 5, 1001)
    out = np.empty_like(x)
    _apply_tanh(x, out)
    assert np.array_equal(out, [math.tanh(v) for v in x])


@pytest.mark.parametrize("n_cols,threads,tile", [(1, 2, 16), (256, 2, 128), (8192, 2, 1024), (2700, 2, 1024),
                                                 (33, 1, 48), (256, 16, 16)])
def test_tiles(n_cols, threads, tile):
    assert cpu_compiled._tile(n_cols, threads) == tile


@pytest.mark.parametrize("threads", [1, 2])
def test_result_does_not_depend_on_threads_or_tiles(threads):
    x, w, c, gy = random_problem(50, 9, 300, seed=3)  # 2700 columns: tiles of 1024, 1024, 652 on 2 threads
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        y, states = cpu_compiled.forward(x, w, c, None, None, 0.1, 2.0, 7)
        grads = cpu_compiled.backward(x, w, c, None, states, gy, None, 0.1, 2.0, 7)
        assert numba.get_num_threads() == min(threads, numba.config.NUMBA_NUM_THREADS)
        assert torch.get_num_threads() == threads  # Numba's OpenMP layer must not reset torch's count
    finally:
        torch.set_num_threads(previous)
    torch.set_num_threads(1)
    try:
        y1, states1 = cpu_compiled.forward(x, w, c, None, None, 0.1, 2.0, 7)
        grads1 = cpu_compiled.backward(x, w, c, None, states1, gy, None, 0.1, 2.0, 7)
    finally:
        torch.set_num_threads(previous)
    for a, b in zip((y, states, *grads), (y1, states1, *grads1)):
        assert torch.equal(a, b)


def test_compiled_loops_and_the_torch_loop_agree():
    x, w, c, gy = random_problem(300, 5, 70, seed=13)
    y_c, st_c = cpu_compiled.forward(x, w, c, None, None, 0.1, 2.0, 64)
    y_v, st_v = torch_loop.forward(x, w, c, None, None, 0.1, 2.0, 64)
    g_c = cpu_compiled.backward(x, w, c, None, st_c, gy, None, 0.1, 2.0, 64)
    g_v = torch_loop.backward(x, w, c, None, st_v, gy, None, 0.1, 2.0, 64)
    assert max(max_rel_errs([y_c, st_c, *g_c], [y_v, st_v, *g_v])) <= 1e-5


def test_without_numba_the_cpu_path_falls_back_with_one_warning():
    code = ("import sys, warnings; sys.modules['numba'] = None; import torch, unicornn\n"
            "x, w, c = torch.randn(20, 2, 3, requires_grad=True), torch.rand(3), torch.rand(3)\n"
            "with warnings.catch_warnings(record=True) as caught:\n"
            "    warnings.simplefilter('always')\n"
            "    for _ in range(3): unicornn.recurrence(x, w, c, 0.1, 1.0).sum().backward()\n"
            "print(len(caught), caught[0].message)\n"
            "ref = unicornn.reference_recurrence(x, w, c, 0.1, 1.0)\n"
            "assert torch.allclose(unicornn.recurrence(x, w, c, 0.1, 1.0), ref, atol=1e-6)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    count, message = done.stdout.strip().split(" ", 1)
    assert count == "1" and "pip install numba" in message and "\n" not in message


_READ_ONLY_CHILD = """
import json, sys, warnings
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    import torch, unicornn
    from unicornn import cpu_path
    x, w, c = torch.randn(30, 2, 3), torch.rand(3), torch.rand(3)
    close = torch.allclose(unicornn.recurrence(x, w, c, 0.1, 1.0), unicornn.reference_recurrence(x, w, c, 0.1, 1.0),
                           atol=1e-5)
print(json.dumps({"where": unicornn.__file__, "implementation": cpu_path.implementation().__name__,
                  "close": close, "warnings": [str(m.message) for m in caught]}))
"""


def test_a_read_only_install_with_an_unwritable_home_keeps_the_compiled_path(tmp_path):
    """A non-editable install in a read-only folder, HOME read-only too (a service account, a read-only
    container): Numba has nowhere to cache, so the CPU path compiles in the process, warning why."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "--mount", "true"]).returncode != 0:
        pytest.skip("needs a mount namespace (unshare --mount, as root) to make folders read-only for root")
    site, home = tmp_path / "site", tmp_path / "home"
    shutil.copytree(REPO / "unicornn", site / "unicornn", ignore=shutil.ignore_patterns("__pycache__"))
    home.mkdir()
    read_only = " && ".join(f"mount --bind {d} {d} && mount -o remount,bind,ro {d} {d}" for d in (site, home))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_", "XDG_"))} | {"HOME": str(home)}
    done = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                           f'{read_only} && exec "$0" -c "$1"', sys.executable,
                           f"import sys; sys.path.insert(0, {str(site)!r})\n" + _READ_ONLY_CHILD],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["where"].startswith(str(site))
    assert result["implementation"] == "unicornn.cpu_compiled" and result["close"], result
    assert not any("pip install numba" in m for m in result["warnings"]), result["warnings"]
    assert any("cannot write its on-disk cache" in m and "NUMBA_CACHE_DIR" in m for m in result["warnings"])
    assert not list(site.rglob("*.nbi")) and not list(home.rglob("*"))
