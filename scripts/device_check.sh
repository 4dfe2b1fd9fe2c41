#!/usr/bin/env bash
# GPU check, run from the repo root on a CUDA machine (no install needed: PYTHONPATH=src).
# Runs the test suite (the batched-vs-reference tests then also run on cuda) and times the main
# jobs on cuda, with a CPU baseline on the same machine.  Logs go to $OUT (default ./device-out).
set -uo pipefail
OUT=${OUT:-device-out}
mkdir -p "$OUT"
export PYTHONPATH=src PYTHONUNBUFFERED=1
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import sys, torch; print('python', sys.version.split()[0], 'torch', torch.__version__, torch.cuda.get_device_name(), 'cpu threads', torch.get_num_threads())"
} 2>&1 | tee "$OUT/env.txt"
timeout 240 python3 -m pytest -q -x -p no:cacheprovider tests 2>&1 | tail -15 | tee "$OUT/pytest.txt"
run() {  # name, then mmgain arguments
  local name=$1; shift
  local t0=$(date +%s%N)
  timeout 300 python3 -m mmgain "$@" --quiet --out "/tmp/$name" > "$OUT/$name.txt" 2>&1
  local rc=$?
  echo "$name: exit $rc wall $(( ($(date +%s%N) - t0) / 1000000 )) ms" | tee -a "$OUT/timings.txt"
}
run syn_cuda reproduce synthetic --device cuda
run syn_cpu reproduce synthetic --device cpu
run mfeat_cuda run --device cuda
cp /tmp/mfeat_cuda/summary.json "$OUT/mfeat_cuda_summary.json" 2>/dev/null
tail -3 "$OUT"/syn_cuda.txt "$OUT"/syn_cpu.txt "$OUT"/mfeat_cuda.txt
