#!/usr/bin/env bash
# Every GPU check in one call, at most 8 minutes on an H100/H200 (each step has its own timeout):
#   1. tests/test_gpu.py: the kernel at K = 1 and 16 against float64, every K bit-identical, the
#      CPU paths' agreement, non-contiguous inputs, side stream and CUDA graph, fast math, bf16
#      autocast, registers/spills per K;
#   2. benchmarks/speed.py: (1000,128,256), (2000,128,256), (784,32,256), (1000,256,512), every
#      prefetch depth K beside cuDNN LSTM, the autograd loop and the copy-bandwidth floor, peak memory;
#   3. three psMNIST epochs with the paper's defaults on real MNIST (seconds and valid accuracy per
#      epoch; the authors' log has 63.67% after the first).
# Run from the repository root on the device machine with MNIST copied into gpu_data/mnist
# (git-ignored; name it in `carry`):   mkdir -p gpu_data && cp -r <mnist folder> gpu_data/mnist
# CuPy must be importable (the device image has cupy-cuda13x). Everything lands in $OUT (8 files at
# most): card.txt gpu_tests.txt speed.txt speed.json speed.png psmnist.txt psmnist_log.json summary.txt
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu_out}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
SCRATCH="$(mktemp -d)"

{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  python -c "import torch, cupy; print('torch', torch.__version__, 'CUDA', torch.version.cuda, 'CuPy', cupy.__version__)"
} 2>&1 | tee "$OUT/card.txt"

timeout 180 python -m pytest -q -p no:cacheprovider -m gpu tests/test_gpu.py 2>&1 | tee "$OUT/gpu_tests.txt" | tail -30

timeout 150 python benchmarks/speed.py --out "$OUT/speed.json" --plot "$OUT/speed.png" 2>&1 | tee "$OUT/speed.txt"

if [ -d gpu_data/mnist ]; then
  timeout 150 python psMNIST/train.py --data-dir gpu_data/mnist --cache-dir "$SCRATCH/cache" --epochs 3 \
    --no-progress --out-dir "$SCRATCH/psmnist_run" 2>&1 | tee "$OUT/psmnist.txt"
  cp "$SCRATCH/psmnist_run/log.json" "$OUT/psmnist_log.json" 2>/dev/null
else
  echo "gpu_data/mnist missing: psMNIST epochs skipped" | tee "$OUT/psmnist.txt"
fi

{ echo "==== summary ===="
  head -2 "$OUT/card.txt"
  tail -1 "$OUT/gpu_tests.txt"
  sed -n '/One layer/,/wrote/p' "$OUT/speed.txt"
  grep -E "^epoch|final test" "$OUT/psmnist.txt" || true
} | tee "$OUT/summary.txt"
