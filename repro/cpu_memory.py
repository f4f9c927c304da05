"""Memory reuse for CPU training. glibc's malloc serves each large block (above 128 KiB, adapting up
to 32 MiB) with a fresh mmap and hands it back to the kernel when it is freed, so every training
step's activations are new pages, and on the 2-core machines this project runs on, first touches of
fresh pages cost more than the arithmetic on them (measured in benchmarks/RESULTS.md: a psMNIST
training step 0.38 s -> 0.29 s). ``reuse_freed_memory`` makes malloc serve blocks up to 32 MiB (its
maximum) from its heap and keep what is freed for the next step."""
import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3      # mallopt parameters (malloc.h)
MMAP_THRESHOLD = 32 * 1024 * 1024                 # glibc's largest allowed value on 64-bit machines
TRIM_THRESHOLD = 1 << 30                          # keep up to 1 GiB of freed heap for reuse


def reuse_freed_memory():
    """Set glibc's malloc to reuse freed blocks up to 32 MiB instead of returning them to the kernel.
    True when set; False where the C library is not glibc (nothing changes there)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):  # not glibc (e.g. musl has no mallopt)
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
