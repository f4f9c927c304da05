"""The CUDA source compiles with NVRTC (no GPU needed), and it is the only kernel in the repository."""
import json
import pathlib
import re
import subprocess
import sys

import pytest

from unicornn import KERNEL_SOURCE
from unicornn.cuda_kernel import PREFETCH_DEPTHS, nvrtc_options

REPO = pathlib.Path(__file__).resolve().parents[1]


# Compiled in a child process: loading libnvrtc through cuda-bindings into the test process was
# seen to corrupt a later torch.save in the same process (torch 2.14.1, cuda-bindings 13.5).
_COMPILE = r"""
import json, sys
from cuda.bindings import nvrtc
source, options = json.load(sys.stdin)
err, prog = nvrtc.nvrtcCreateProgram(source.encode(), b"unicornn.cu", 0, [], [])
opts = [o.encode() for o in options]
(err,) = nvrtc.nvrtcCompileProgram(prog, len(opts), opts)
_, size = nvrtc.nvrtcGetProgramLogSize(prog)
log = b" " * size
nvrtc.nvrtcGetProgramLog(prog, log)
ptx = b""
if err == nvrtc.nvrtcResult.NVRTC_SUCCESS:
    _, size = nvrtc.nvrtcGetPTXSize(prog)
    ptx = b" " * size
    nvrtc.nvrtcGetPTX(prog, ptx)
print(json.dumps({"ok": err == nvrtc.nvrtcResult.NVRTC_SUCCESS,
                  "ptx": ptx.decode(errors="replace"), "log": log.decode(errors="replace")}))
"""


def compile_to_ptx(source, options):
    pytest.importorskip("cuda.bindings.nvrtc", reason="NVRTC (cuda-bindings) not installed")
    child = subprocess.run([sys.executable, "-c", _COMPILE], input=json.dumps([source, list(options)]),
                           capture_output=True, text=True, timeout=120)
    if child.returncode != 0:
        if "RuntimeError" in child.stderr and "nvrtc" in child.stderr.lower():
            pytest.skip(f"libnvrtc not loadable: {child.stderr.strip().splitlines()[-1]}")
        raise AssertionError(f"NVRTC child failed: {child.stderr}")
    result = json.loads(child.stdout)
    assert result["ok"], "NVRTC compile error: " + result["log"]
    return result["ptx"], result["log"]


@pytest.mark.parametrize("prefetch", PREFETCH_DEPTHS)
@pytest.mark.parametrize("fast_math", [False, True])
@pytest.mark.parametrize("arch", ["compute_80", "compute_90"])
def test_kernel_source_compiles_with_nvrtc(arch, fast_math, prefetch):
    ptx, log = compile_to_ptx(KERNEL_SOURCE, (f"--gpu-architecture={arch}",) + nvrtc_options(fast_math, prefetch))
    assert ".entry unicornn_forward" in ptx and ".entry unicornn_backward" in ptx
    assert "warning" not in log.lower(), log
    # exact tanh by default: fast-math's approximate tanh instruction only when asked for
    assert ("tanh.approx" in ptx) == fast_math


def ptxas_report(log):
    """{kernel: (registers, spill store bytes, spill load bytes)} from ptxas -v's log."""
    report = {}
    for name, body in re.findall(r"Compiling entry function '(\w+)'(.*?)(?=Compiling entry function|\Z)", log, re.S):
        stores, loads = map(int, re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", body).groups())
        report[name] = (int(re.search(r"Used (\d+) registers", body).group(1)), stores, loads)
    return report


@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_no_register_spills_at_any_prefetch_depth(arch, capsys):
    """Machine code for A100 (sm_80) and H100/H200 (sm_90): the prefetch ring must stay in registers."""
    rows = []
    for prefetch in PREFETCH_DEPTHS:
        _, log = compile_to_ptx(KERNEL_SOURCE, (f"--gpu-architecture={arch}", "--ptxas-options=-v")
                                + nvrtc_options(False, prefetch))
        report = ptxas_report(log)
        assert set(report) == {"unicornn_forward", "unicornn_backward"}, log
        rows.append((prefetch, report))
    with capsys.disabled():
        print(f"\n{arch} registers per thread (forward, backward) by prefetch depth: "
              + ", ".join(f"K={k}: {r['unicornn_forward'][0]}, {r['unicornn_backward'][0]}" for k, r in rows))
    spills = {(k, name): r[1:] for k, report in rows for name, r in report.items() if r[1] or r[2]}
    assert not spills, f"register spills (store, load bytes): {spills}"


def test_kernel_source_compiles_without_the_prefetch_flag():
    """The source defines its default depth itself (#ifndef PREFETCH)."""
    ptx, _ = compile_to_ptx(KERNEL_SOURCE, ("--gpu-architecture=compute_90", "--std=c++14"))
    assert ".entry unicornn_forward" in ptx


def test_compile_errors_are_reported():
    with pytest.raises(AssertionError, match="error"):
        compile_to_ptx(KERNEL_SOURCE + "\nthis is not C++;", ("--gpu-architecture=compute_80",))


def test_single_kernel_source_in_repository():
    """Outside tests/ (toy kernels, the emulator's shim), only kernel_source.py holds CUDA kernels."""
    hits = [p for p in REPO.rglob("*") if p.suffix in {".py", ".cu", ".cuh", ".sh", ".cpp", ".h"}
            and not {".venv", "tests"} & set(p.relative_to(REPO).parts)
            and "__global__" in p.read_text(errors="ignore")]
    assert [p.relative_to(REPO).as_posix() for p in hits] == ["unicornn/kernel_source.py"]
