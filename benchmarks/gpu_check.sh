#!/usr/bin/env bash
# Every GPU check in one call (a few minutes on an H100): the kernel tests, the speed benchmark, and
# one psMNIST epoch with the paper's defaults on real MNIST. Run from the repository root on the
# device machine, with MNIST copied into gpu_data/mnist (git-ignored; name it in `carry`):
#   mkdir -p gpu_data && cp -r ../shared/data/mnist gpu_data/
#   bash benchmarks/gpu_check.sh
# CuPy must be importable (the device image has cupy-cuda13x). Prints a short table last.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "${OUT:-gpu_out}"
OUT="${OUT:-gpu_out}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/card.txt"

python -m pytest -q -m gpu tests/test_gpu.py 2>&1 | tee "$OUT/gpu_tests.txt" | tail -25
python benchmarks/speed.py --out "$OUT/speed.json" --plot "$OUT/speed.png" 2>&1 | tee "$OUT/speed.txt"
if [ -d gpu_data/mnist ]; then
  timeout 300 python psMNIST/train.py --data-dir gpu_data/mnist --epochs 3 --no-progress \
    --out-dir "$OUT/psmnist_run" 2>&1 | tee "$OUT/psmnist.txt" | tail -5
else
  echo "gpu_data/mnist missing: psMNIST epoch skipped" | tee "$OUT/psmnist.txt"
fi

echo; echo "==== summary ===="
head -2 "$OUT/card.txt" | tail -1
tail -1 "$OUT/gpu_tests.txt"
sed -n '/One layer/,/wrote/p' "$OUT/speed.txt"
grep -E "^epoch|final test" "$OUT/psmnist.txt" || true
