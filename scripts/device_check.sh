#!/usr/bin/env bash
# GPU check, run from the repo root on a CUDA machine (no install needed: PYTHONPATH=src), sized
# for a 10-minute call: the tests parametrized on cuda (batched trainer and Adam against the
# reference, determinism; the probes' sync-free solver and one-solve layout against the CPU's),
# then the default `mmgain run` on cuda end to end (issue 20's goal: ≤ 10 s; run.json's work
# counts the solver rounds that set the probes' time there), then `mmgain bench` on cuda (naive
# side at 10 epochs, scaled).  Logs go to $OUT
# (default ./device-out); each step has its own time limit, so a slow one still leaves the others.
set -uo pipefail
OUT=${OUT:-device-out}
mkdir -p "$OUT"
export PYTHONPATH=src PYTHONUNBUFFERED=1
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import sys, torch; print('python', sys.version.split()[0], 'torch', torch.__version__, torch.cuda.get_device_name(), 'cpu threads', torch.get_num_threads())"
  lscpu | grep -m1 "Model name"
} 2>&1 | tee "$OUT/env.txt"
timeout 120 python3 -m pytest -q -p no:cacheprovider -k cuda tests/test_training.py tests/test_probes.py \
  tests/test_pairs.py 2>&1 | tail -15 | tee "$OUT/pytest.txt"
step() {  # name, limit in seconds, then mmgain arguments
  local name=$1 limit=$2; shift 2
  local t0=$(date +%s%N)
  timeout "$limit" python3 -m mmgain "$@" > "$OUT/$name.txt" 2>&1
  local rc=$?
  echo "$name: exit $rc wall $(( ($(date +%s%N) - t0) / 1000000 )) ms (limit ${limit} s)" | tee -a "$OUT/timings.txt"
}
step default_run_cuda 230 run --device cuda --quiet --out /tmp/default_cuda
python3 - "$OUT" <<'EOF' 2>&1 | tee -a "$OUT/timings.txt"
import json, sys
try:
    run = json.load(open("/tmp/default_cuda/run.json"))
    print("default run on cuda: status", run.get("status"), "| work", json.dumps(run.get("work")),
          "| estimate", json.dumps(run.get("estimate", {}).get("seconds")))
    v = json.load(open("/tmp/default_cuda/summary.json")).get("verdicts")
    print("verdicts", json.dumps(v))
except (OSError, ValueError) as e:
    print("no run.json / summary.json:", e)
EOF
step bench_cuda 200 bench --device cuda --naive-epochs 10
tail -8 "$OUT"/default_run_cuda.txt "$OUT"/bench_cuda.txt
