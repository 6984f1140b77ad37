#!/usr/bin/env bash
# Every GPU figure of issue 10 ("mmE5 at 2x on one GPU") in one go, on one CUDA GPU (full-size mmE5
# architecture, random bf16 weights: no download). Prints each benchmark's output, then a summary with
# the targets; exits non-zero if a hard check fails (the 24 GB build, the fast path's agreement).
#
#   bash benchmarks/gpu_check.sh                       # all stages (~8-10 min on an H200)
#   bash benchmarks/gpu_check.sh embed cap indexer     # some stages (to fit a 10-minute call: run it twice)
#   bash benchmarks/gpu_check.sh train search
#
# Stages: embed   bench_embed: plain forward vs stock vs fast path at 1/2/4 tiles (img/s, peak, max|Δ|, min cos),
#                 peak at batch 1/2/4/8, one-text query eager vs compiled
#         cap     a default index build under torch.cuda.set_per_process_memory_fraction(24 GB / total)
#         indexer bench_indexer end to end vs model-only
#         train   bench_train step time with and without the fast attention, plus a profile of one step
#         search  bench_search --split: text query -> top 20 with metadata at 1,000,000 vectors (encode/search/fetch)
# Logs go to $OUT (the device tool's folder) or ./gpu_check_logs.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
LOGS=${OUT:-gpu_check_logs}
mkdir -p "$LOGS"
STAGES=("$@")
[ ${#STAGES[@]} -eq 0 ] && STAGES=(embed cap indexer train search)
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export MME5_QUERY_BUCKETS=${MME5_QUERY_BUCKETS:-64}   # one bucket: a short compile; the app default is 16..256
FAILED=0
SUMMARY=()

run() {  # name, timeout seconds, command...
  local name=$1 limit=$2
  shift 2
  echo "===== $name: $* (limit ${limit}s)"
  local started=$SECONDS
  timeout "$limit" "$@" > >(tee "$LOGS/$name.out") 2> >(tee "$LOGS/$name.err" >&2)
  local code=$?
  echo "===== $name: exit $code after $((SECONDS - started))s"
  [ $code -ne 0 ] && { FAILED=1; SUMMARY+=("$name: FAILED (exit $code), see $LOGS/$name.err"); }
  return $code
}

$PY - <<'PY' || exit 1
import torch
assert torch.cuda.is_available(), "no CUDA GPU visible: this script measures GPU figures"
p = torch.cuda.get_device_properties(0)
print(f"GPU: {p.name}, {p.total_memory / 2**30:.0f} GiB; torch {torch.__version__}")
PY
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null

for stage in "${STAGES[@]}"; do
  case $stage in
    embed)
      run embed 420 $PY benchmarks/bench_embed.py --full-size-mme5 --images 32 --texts 64 --batch-sizes 8 \
        --compare-tiles 1 2 4 --peak-batches 1 2 4 8 --queries 40 && {
        line=$(grep -E '^ +4 ' "$LOGS/embed.out" | head -1)
        SUMMARY+=("embed 4-tile row (target fast/plain >= 2.0x, min cos >= 0.999): $line")
        SUMMARY+=("$(grep -- '-- peak GPU memory' "$LOGS/embed.out")")
        SUMMARY+=("$(grep -- '-- text query' "$LOGS/embed.out")")
        $PY - "$LOGS/embed.out" <<'PY' || { FAILED=1; SUMMARY+=("embed: fast path disagrees with the plain forward"); }
import re, sys
rows = [l for l in open(sys.argv[1]) if re.match(r"^ +[124] +\d+x\d+ \|", l)]
assert rows, "no comparison rows"
for row in rows:
    cos = float(row.split()[-1])
    assert cos >= 0.999, f"min cosine {cos} < 0.999: {row}"
PY
      } ;;
    cap)
      run cap 300 $PY benchmarks/bench_indexer.py --full-size-mme5 --device cuda --memory-cap-gb 24 --images 48 \
        --model-images 16 --rerun-files 0 --json && {
        $PY - "$LOGS/cap.out" <<'PY' && SUMMARY+=("cap: default build under a 24 GB cap PASSED: $(tail -1 "$LOGS/cap.out")") \
          || { FAILED=1; SUMMARY+=("cap: default build under a 24 GB cap FAILED"); }
import json, sys
f = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
assert f["errors"] == 0 and f["images"] == 48, f
assert f["peak_gpu_memory_gib"] * 2**30 <= 24e9, f
print(f"batch used {f['batch_size_used']}, peak {f['peak_gpu_memory_gib']} GiB, indexer {f['indexer_img_s']} img/s")
PY
      } ;;
    indexer)
      run indexer 420 $PY benchmarks/bench_indexer.py --full-size-mme5 --device cuda --images 240 --size 1600x1200 \
        --model-images 64 --rerun-files 0 --json && {
        SUMMARY+=("indexer (target efficiency_vs_model >= 0.95): $($PY -c "import json,sys; f=json.loads(open(sys.argv[1]).read().strip().splitlines()[-1]); print({k: f[k] for k in ('model_img_s','indexer_img_s','efficiency_vs_model','batch_size_used','fast_attention','peak_gpu_memory_gib')})" "$LOGS/indexer.out")")
      } ;;
    train)
      run train 420 $PY benchmarks/bench_train.py --full-size-mme5 --batch-size 2 --steps 2 --attention both --profile && {
        SUMMARY+=("train: $($PY -c "import json,sys; t=open(sys.argv[1]).read(); f=json.loads(t[t.index('{'):]); print(f['step_s_by_attention'], 'peak', f.get('peak_gpu_memory_gib_by_attention'))" "$LOGS/train.out")")
      } ;;
    search)
      run search 480 $PY benchmarks/bench_search.py --device cuda --full-size-mme5 --split --sizes 1000000 \
        --queries 50 && {
        SUMMARY+=("search at 1M (target total p50 <= 10 ms): $(tail -1 "$LOGS/search.out")")
      } ;;
    *) echo "unknown stage $stage (embed cap indexer train search)"; exit 2 ;;
  esac
done

echo
echo "===== SUMMARY ($(date -u +%F), $($PY -c 'import torch; print(torch.cuda.get_device_name(0))'))"
printf '%s\n' "${SUMMARY[@]}"
exit $FAILED
