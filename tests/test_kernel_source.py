"""The CUDA source compiles with NVRTC (no GPU needed), and it is the only kernel in the repository."""
import pathlib

import pytest

from unicornn import KERNEL_SOURCE
from unicornn.cuda_kernel import nvrtc_options

REPO = pathlib.Path(__file__).resolve().parents[1]


def compile_to_ptx(source, options):
    nvrtc = pytest.importorskip("cuda.bindings.nvrtc", reason="NVRTC (cuda-bindings) not installed")
    err, prog = nvrtc.nvrtcCreateProgram(source.encode(), b"unicornn.cu", 0, [], [])
    assert err == nvrtc.nvrtcResult.NVRTC_SUCCESS
    try:
        opts = [o.encode() for o in options]
        (err,) = nvrtc.nvrtcCompileProgram(prog, len(opts), opts)
    except RuntimeError as load_error:  # the bindings are there but libnvrtc is not
        pytest.skip(f"libnvrtc not loadable: {load_error}")
    _, size = nvrtc.nvrtcGetProgramLogSize(prog)
    log = b" " * size
    nvrtc.nvrtcGetProgramLog(prog, log)
    assert err == nvrtc.nvrtcResult.NVRTC_SUCCESS, log.decode(errors="replace")
    _, size = nvrtc.nvrtcGetPTXSize(prog)
    ptx = b" " * size
    nvrtc.nvrtcGetPTX(prog, ptx)
    nvrtc.nvrtcDestroyProgram(prog)
    return ptx.decode(errors="replace"), log.decode(errors="replace")


@pytest.mark.parametrize("fast_math", [False, True])
@pytest.mark.parametrize("arch", ["compute_80", "compute_90"])
def test_kernel_source_compiles_with_nvrtc(arch, fast_math):
    ptx, log = compile_to_ptx(KERNEL_SOURCE, (f"--gpu-architecture={arch}",) + nvrtc_options(fast_math))
    assert ".entry unicornn_forward" in ptx and ".entry unicornn_backward" in ptx
    assert "warning" not in log.lower(), log
    # exact tanh by default: fast-math's approximate tanh instruction only when asked for
    assert ("tanh.approx" in ptx) == fast_math


def test_compile_errors_are_reported():
    with pytest.raises(AssertionError, match="error"):
        compile_to_ptx(KERNEL_SOURCE + "\nthis is not C++;", ("--gpu-architecture=compute_80",))


def test_single_kernel_source_in_repository():
    hits = [p for p in REPO.rglob("*") if p.suffix in {".py", ".cu", ".cuh", ".sh"}
            and ".venv" not in p.parts and "__global__" in p.read_text(errors="ignore")
            and not p.name.startswith("test_")]
    assert [p.relative_to(REPO).as_posix() for p in hits] == ["unicornn/kernel_source.py"]
