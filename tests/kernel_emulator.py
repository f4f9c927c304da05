"""Runs CUDA C kernel source on the CPU: the source is compiled unchanged by the host C++ compiler
(g++ -O2 -std=c++17 -shared -fPIC) after a shim header that supplies what CUDA C needs, and loaded
with ctypes. One ``launch_<kernel>(grid, block, shared bytes, args...)`` is generated per
``extern "C" __global__`` function of the source.

A block's threads run as cooperating user-space threads (ucontext), one block after another:
``__syncthreads``, ``__syncwarp`` and the warp collectives (``__shfl*_sync``, ``__ballot_sync``,
``__any_sync``, ``__all_sync``) are real barriers, so a kernel that needs them only works with them.
Each thread runs until it reaches a barrier, in thread order, which exposes a missing barrier as a
read of data not written yet. Shared memory (static ``__shared__`` and dynamic
``extern __shared__``) is filled with NaN bytes before every block, so reading it before writing
shows. A barrier that can never be released (divergent ``__syncthreads``, a warp collective whose
mask names an exited lane) fails the launch with a message instead of hanging, and so does a memory
access that faults (``fenced_empty`` allocates buffers between inaccessible pages).

``double=True`` maps ``float`` to ``double`` and ``tanhf``/``expf``/... to their double forms, to
separate logic errors (which survive) from float32 rounding (which does not).
"""
import ctypes
import hashlib
import mmap
import pathlib
import re
import shutil
import subprocess
import tempfile

import numpy as np
import torch

SHIM = r"""
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <stdlib.h>
#include <stdio.h>
#include <ucontext.h>
#include <setjmp.h>
#include <signal.h>
#include <algorithm>
#include <functional>
#include <string>
#include <vector>

struct dim3 {
    unsigned x, y, z;
    dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
static dim3 threadIdx, blockIdx, blockDim, gridDim;
static const int warpSize = 32;

namespace emu {
enum State { RUNNABLE, AT_BLOCK_BARRIER, AT_WARP_BARRIER, EXITED };
struct Thread { ucontext_t context; State state; unsigned warp_generation; dim3 index; };
struct Warp { unsigned arrived, mask, generation; uint64_t slots[32]; };

static std::vector<Thread> threads;
static std::vector<Warp> warps;
static std::vector<std::vector<char>> stacks;
static ucontext_t scheduler;
static int current = -1;
static std::function<void()> body;
static std::string error;
static std::vector<unsigned char> dynamic_shared_memory;
static const size_t STACK_BYTES = 256 * 1024;

static void fail(const std::string& message) {
    if (error.empty()) error = message;
}

// The memory clobbers keep the compiler from carrying shared or global memory in registers across a
// switch to another emulated thread (which may have written it).
static void yield_to_scheduler() {
    asm volatile("" ::: "memory");
    swapcontext(&threads[current].context, &scheduler);
    asm volatile("" ::: "memory");
}

static void trampoline() {
    body();
    threads[current].state = EXITED;
    yield_to_scheduler();  // never resumed
}

static int linear(const dim3& i) { return (int)(i.x + blockDim.x * (i.y + blockDim.y * i.z)); }

static void sync_block() {
    threads[current].state = AT_BLOCK_BARRIER;
    yield_to_scheduler();
}

// All lanes of ``mask`` (in this thread's warp) wait for each other.
static void sync_warp(unsigned mask) {
    Thread& me = threads[current];
    Warp& warp = warps[current / 32];
    const unsigned lane = current % 32;
    if (!(mask & (1u << lane))) fail("a warp collective was called by a lane outside its mask");
    warp.mask = mask;
    warp.arrived |= 1u << lane;
    me.warp_generation = warp.generation;
    me.state = AT_WARP_BARRIER;
    yield_to_scheduler();
}

// Releases barriers that every participant has reached. Returns true if any thread was released.
static bool release_barriers(int n) {
    bool released = false;
    int waiting = 0, exited = 0;
    for (int i = 0; i < n; ++i) {
        waiting += threads[i].state == AT_BLOCK_BARRIER;
        exited += threads[i].state == EXITED;
    }
    if (waiting > 0 && waiting + exited == n) {
        for (int i = 0; i < n; ++i)
            if (threads[i].state == AT_BLOCK_BARRIER) threads[i].state = RUNNABLE;
        released = true;
    }
    for (size_t w = 0; w < warps.size(); ++w) {
        Warp& warp = warps[w];
        if (!warp.arrived) continue;
        for (unsigned lane = 0; lane < 32; ++lane) {
            const int i = (int)(w * 32 + lane);
            if ((warp.mask & (1u << lane)) && (i >= n || threads[i].state == EXITED))
                fail("a warp collective's mask names a lane that has exited or does not exist");
        }
        if ((warp.arrived & warp.mask) != warp.mask) continue;
        for (unsigned lane = 0; lane < 32; ++lane) {
            const int i = (int)(w * 32 + lane);
            if (i < n && threads[i].state == AT_WARP_BARRIER && (warp.mask & (1u << lane)))
                threads[i].state = RUNNABLE;
        }
        warp.arrived = 0;
        warp.generation += 1;
        released = true;
    }
    return released;
}

void poison_shared_memory();

// A load or store outside the mapped memory (the test's buffers have inaccessible pages on both
// sides) jumps back here and fails the launch, instead of killing the process.
static sigjmp_buf fault_return;
static void* fault_address;
static void on_fault(int, siginfo_t* info, void*) {
    fault_address = info->si_addr;
    siglongjmp(fault_return, 1);
}

static int run_blocks(dim3 grid, dim3 block, size_t shared_bytes, std::function<void()> kernel);

static int run_grid(dim3 grid, dim3 block, size_t shared_bytes, std::function<void()> kernel) {
    error.clear();
    struct sigaction action, old_segv, old_bus;
    memset(&action, 0, sizeof(action));
    action.sa_sigaction = on_fault;
    action.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(SIGSEGV, &action, &old_segv);
    sigaction(SIGBUS, &action, &old_bus);
    int status;
    if (sigsetjmp(fault_return, 1) == 0) {
        status = run_blocks(grid, block, shared_bytes, kernel);
    } else {
        char message[200];
        snprintf(message, sizeof(message), "out-of-bounds memory access at %p by block (%u, %u, %u) "
                 "thread (%u, %u, %u)", fault_address, blockIdx.x, blockIdx.y, blockIdx.z,
                 threadIdx.x, threadIdx.y, threadIdx.z);
        fail(message);
        status = 1;
    }
    sigaction(SIGSEGV, &old_segv, nullptr);
    sigaction(SIGBUS, &old_bus, nullptr);
    return status;
}

static int run_blocks(dim3 grid, dim3 block, size_t shared_bytes, std::function<void()> kernel) {
    gridDim = grid;
    blockDim = block;
    const int n = (int)(block.x * block.y * block.z);
    if (n < 1 || n > 1024) { fail("block size must be 1..1024 threads"); return 1; }
    threads.assign(n, Thread());
    warps.assign((n + 31) / 32, Warp());
    if ((int)stacks.size() < n) stacks.resize(n, std::vector<char>(STACK_BYTES));
    dynamic_shared_memory.assign(shared_bytes, 0xFF);
    body = kernel;
    for (unsigned bz = 0; bz < grid.z; ++bz)
    for (unsigned by = 0; by < grid.y; ++by)
    for (unsigned bx = 0; bx < grid.x; ++bx) {
        blockIdx = dim3(bx, by, bz);
        poison_shared_memory();
        for (int i = 0; i < n; ++i) {
            Thread& t = threads[i];
            t.state = RUNNABLE;
            t.index = dim3(i % block.x, (i / block.x) % block.y, i / (block.x * block.y));
            getcontext(&t.context);
            t.context.uc_stack.ss_sp = stacks[i].data();
            t.context.uc_stack.ss_size = STACK_BYTES;
            t.context.uc_link = nullptr;
            makecontext(&t.context, trampoline, 0);
        }
        for (auto& w : warps) w = Warp();
        for (;;) {
            bool ran = false, all_exited = true;
            for (int i = 0; i < n; ++i) {
                if (threads[i].state == RUNNABLE) {
                    current = i;
                    threadIdx = threads[i].index;
                    swapcontext(&scheduler, &threads[i].context);
                    ran = true;
                    if (!error.empty()) return 1;
                }
                all_exited &= threads[i].state == EXITED;
            }
            if (all_exited) break;
            if (!release_barriers(n) && !ran) {
                fail("deadlock: threads wait at barriers that can never be released "
                     "(a __syncthreads or warp collective not reached by every thread it needs)");
            }
            if (!error.empty()) return 1;
        }
    }
    return 0;
}

template <typename T> static T exchange(unsigned mask, T value, int source_lane) {
    uint64_t bits = 0;
    memcpy(&bits, &value, sizeof(T));
    warps[current / 32].slots[current % 32] = bits;
    sync_warp(mask);
    T out;
    memcpy(&out, &warps[current / 32].slots[source_lane & 31], sizeof(T));
    sync_warp(mask);  // nobody overwrites a slot before every lane has read
    return out;
}
}  // namespace emu

extern "C" const char* emu_last_error() { return emu::error.c_str(); }

// ---- CUDA C as the kernels see it ----
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static __attribute__((section("emu_shared"), used))
static inline void __syncthreads() { emu::sync_block(); }
static inline void __syncwarp(unsigned mask = 0xffffffffu) { emu::sync_warp(mask); }
static inline unsigned emu_lane() { return (unsigned)(emu::current % 32); }
template <typename T> static inline T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
    return emu::exchange(mask, v, (int)(emu_lane() / width * width) + (src % width)); }
template <typename T> static inline T __shfl_down_sync(unsigned mask, T v, unsigned d, int width = 32) {
    unsigned lane = emu_lane(), base = lane / width * width;
    return emu::exchange(mask, v, (int)(lane - base + d < (unsigned)width ? lane + d : lane)); }
template <typename T> static inline T __shfl_up_sync(unsigned mask, T v, unsigned d, int width = 32) {
    unsigned lane = emu_lane(), base = lane / width * width;
    return emu::exchange(mask, v, (int)(lane - base >= d ? lane - d : lane)); }
template <typename T> static inline T __shfl_xor_sync(unsigned mask, T v, int m, int width = 32) {
    unsigned lane = emu_lane(), target = lane ^ (unsigned)m;
    return emu::exchange(mask, v, (int)(target / width == lane / width ? target : lane)); }
static inline unsigned __ballot_sync(unsigned mask, int predicate) {
    unsigned bits = 0;
    for (unsigned i = 0; i < 32; ++i) {
        unsigned vote = emu::exchange(mask, (unsigned)(predicate != 0), (int)i);
        if (mask & (1u << i)) bits |= vote << i;
    }
    return bits;
}
static inline int __any_sync(unsigned mask, int p) { return __ballot_sync(mask, p) != 0; }
static inline int __all_sync(unsigned mask, int p) { return __ballot_sync(mask, p) == mask; }
template <typename T> static inline T atomicAdd(T* a, T v) { T old = *a; *a = old + v; return old; }
template <typename T> static inline T atomicMax(T* a, T v) { T old = *a; *a = std::max(old, v); return old; }
template <typename T> static inline T atomicMin(T* a, T v) { T old = *a; *a = std::min(old, v); return old; }
template <typename T> static inline T atomicExch(T* a, T v) { T old = *a; *a = v; return old; }
template <typename T> static inline T atomicCAS(T* a, T cmp, T v) { T old = *a; if (old == cmp) *a = v; return old; }
template <typename T> static inline T __ldg(const T* p) { return *p; }
#define __expf(v) expf(v)
#define __fdividef(a, b) ((a) / (b))
static inline float rsqrtf(float v) { return 1.0f / sqrtf(v); }
using std::min;
using std::max;
"""

# after the shim, before the source: the double-precision build
DOUBLE = r"""
#define float double
#define tanhf tanh
#define expf exp
#define logf log
#define sqrtf sqrt
#define fabsf fabs
#define fmaf fma
#define fminf fmin
#define fmaxf fmax
#define rsqrtf(v) (1.0 / sqrt(v))
"""

POISON = r"""
extern char __start_emu_shared[] __attribute__((weak));
extern char __stop_emu_shared[] __attribute__((weak));
void emu::poison_shared_memory() {
    if (__start_emu_shared && __stop_emu_shared)
        memset(__start_emu_shared, 0xFF, (size_t)(__stop_emu_shared - __start_emu_shared));
    memset(dynamic_shared_memory.data(), 0xFF, dynamic_shared_memory.size());
}
"""

_KERNEL = re.compile(r'extern\s+"C"\s+__global__\s+void\s+(\w+)\s*\(([^)]*)\)', re.S)
_DYNAMIC_SHARED = re.compile(r"extern\s+__shared__\s+([\w\s]+?)\s+(\w+)\s*\[\s*\]\s*;")
_CTYPES = {"int": ctypes.c_int, "unsigned": ctypes.c_uint, "unsigned int": ctypes.c_uint, "long long": ctypes.c_longlong,
           "size_t": ctypes.c_size_t, "bool": ctypes.c_bool, "float": ctypes.c_float, "double": ctypes.c_double}


def compiler():
    return shutil.which("g++") or shutil.which("c++")


def _strip_comments(text):
    return re.sub(r"//[^\n]*|/\*.*?\*/", "", text, flags=re.S)


def kernel_signatures(source):
    """{kernel name: [(C type, parameter name), ...]} of every extern "C" __global__ function."""
    out = {}
    for name, params in _KERNEL.findall(_strip_comments(source)):
        parsed = []
        for param in filter(None, (p.strip() for p in params.split(","))):
            kind, pname = re.fullmatch(r"(.*?)(\w+)", param, re.S).groups()
            parsed.append((" ".join(kind.split()), pname))
        out[name] = parsed
    return out


def _launchers(signatures):
    code = []
    for name, params in signatures.items():
        declared = ", ".join(f"{kind} {pname}" for kind, pname in params)
        names = ", ".join(pname for _, pname in params)
        code.append(f'extern "C" int launch_{name}(unsigned gx, unsigned gy, unsigned gz, unsigned bx, '
                    f"unsigned by, unsigned bz, unsigned long shared_bytes{', ' if params else ''}{declared}) {{\n"
                    f"    return emu::run_grid(dim3(gx, gy, gz), dim3(bx, by, bz), shared_bytes, "
                    f"[&]() {{ {name}({names}); }});\n}}\n")
    return "\n".join(code)


def _ctype(kind, double):
    """ctypes type of a kernel parameter as the built library sees it."""
    if "*" in kind:
        return ctypes.c_void_p
    base = " ".join(w for w in kind.split() if w not in ("const", "__restrict__", "volatile"))
    if double and base == "float":
        base = "double"
    if base not in _CTYPES:
        raise TypeError(f"no ctypes mapping for kernel parameter type {kind!r}")
    return _CTYPES[base]


def _pointee_dtype(kind, double):
    base = " ".join(w for w in kind.replace("*", " ").split() if w not in ("const", "__restrict__", "volatile"))
    dtypes = {"float": torch.float64 if double else torch.float32, "double": torch.float64,
              "int": torch.int32, "unsigned": torch.int32, "unsigned int": torch.int32}
    if base not in dtypes:
        raise TypeError(f"no tensor dtype for kernel parameter type {kind!r}")
    return dtypes[base]


class EmulatedModule:
    """The kernels of one build; ``launch(name, grid, block, args)`` mirrors a CuPy launch."""

    def __init__(self, library, signatures, double):
        self.library, self.signatures, self.double = library, signatures, double
        library.emu_last_error.restype = ctypes.c_char_p

    def launch(self, name, grid, block, args, shared_bytes=0):
        params = self.signatures[name]
        if len(args) != len(params):
            raise TypeError(f"{name} takes {len(params)} arguments ({', '.join(p for _, p in params)}), "
                            f"got {len(args)}")
        converted = []
        for (kind, pname), value in zip(params, args):
            ctype = _ctype(kind, self.double)
            if isinstance(value, torch.Tensor):
                want = _pointee_dtype(kind, self.double)
                if ctype is not ctypes.c_void_p or value.device.type != "cpu" or not value.is_contiguous() \
                        or value.dtype != want:
                    raise TypeError(f"{name}: {pname} ({kind}) needs a contiguous CPU tensor of {want}, "
                                    f"got {value.dtype} {tuple(value.shape)} on {value.device}")
                converted.append(ctypes.c_void_p(value.data_ptr()))
            elif value is None:  # a null pointer, as CuPy passes np.uint64(0)
                if ctype is not ctypes.c_void_p:
                    raise TypeError(f"{name}: {pname} is {kind}, got None")
                converted.append(ctypes.c_void_p(None))
            else:
                if ctype is ctypes.c_void_p:
                    raise TypeError(f"{name}: {pname} is {kind}, got {type(value).__name__}")
                converted.append(ctype(value.item() if isinstance(value, np.generic) else value))
        function = getattr(self.library, f"launch_{name}")
        function.restype = ctypes.c_int
        grid, block = tuple(grid) + (1,) * (3 - len(grid)), tuple(block) + (1,) * (3 - len(block))
        if function(*grid, *block, ctypes.c_ulong(shared_bytes), *converted) != 0:
            raise RuntimeError(f"emulated {name} failed: {self.library.emu_last_error().decode()}")


_PAGE = mmap.PAGESIZE
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)


def fenced_empty(numel, dtype):
    """An uninitialised 1-D CPU tensor that ends exactly where an inaccessible page begins and has
    one before it too (less than a page of accessible slack in front): a kernel that reads or
    writes past its end fails the launch with "out-of-bounds memory access"."""
    nbytes = numel * torch.empty((), dtype=dtype).element_size()
    body = -(-max(nbytes, 1) // _PAGE) * _PAGE
    region = mmap.mmap(-1, body + 2 * _PAGE)
    start = ctypes.addressof(ctypes.c_char.from_buffer(region))
    for page in (start, start + _PAGE + body):
        if _libc.mprotect(ctypes.c_void_p(page), _PAGE, 0) != 0:  # PROT_NONE
            raise OSError(ctypes.get_errno(), "mprotect failed")
    return torch.frombuffer(region, dtype=dtype, count=numel, offset=_PAGE + body - nbytes)


_BUILD_DIR = pathlib.Path(tempfile.gettempdir()) / "unicornn-kernel-emulator"
_modules = {}


def build(source, *, double=False, defines=None):
    """Compile ``source`` with the shim (cached per source, precision and defines)."""
    defines = dict(defines or {})
    key = hashlib.sha1(repr((source, SHIM, DOUBLE, POISON, double, sorted(defines.items()))).encode()).hexdigest()[:16]
    if key in _modules:
        return _modules[key]
    cxx = compiler()
    if cxx is None:
        raise FileNotFoundError("no C++ compiler (g++) on PATH")
    signatures = kernel_signatures(source)
    body = _DYNAMIC_SHARED.sub(
        lambda m: f"{m.group(1)}* const {m.group(2)} = reinterpret_cast<{m.group(1)}*>"
                  f"(emu::dynamic_shared_memory.data());", source)
    text = (SHIM + POISON + "".join(f"#define {k} {v}\n" for k, v in defines.items())
            + (DOUBLE if double else "") + "#line 1 \"kernel_source\"\n" + body + "\n" + _launchers(signatures))
    _BUILD_DIR.mkdir(exist_ok=True)
    cpp, lib = _BUILD_DIR / f"{key}.cpp", _BUILD_DIR / f"{key}.so"
    if not lib.exists():
        cpp.write_text(text)
        tmp = lib.with_suffix(f".{id(text)}.tmp")
        done = subprocess.run([cxx, "-O2", "-std=c++17", "-shared", "-fPIC", "-o", str(tmp), str(cpp)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"the kernel source does not compile on the host:\n{done.stderr[-4000:]}")
        tmp.replace(lib)
    module = EmulatedModule(ctypes.CDLL(str(lib)), signatures, double)
    _modules[key] = module
    return module
