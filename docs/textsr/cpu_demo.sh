#!/usr/bin/env bash
# The CPU-budget run of docs/textsr.md: synthetic TextZoom-like data, TSRN alone, joint TSRN + CRNN, then the
# E/M/H/A tables for bicubic, TSRN and joint. One thread; run from the repository root (or any working directory
# with the repository's tools/ and options/ reachable through $REPO).
#
#   bash docs/textsr/cpu_demo.sh [OUTPUT]     # tables and raw results to OUTPUT (default results/textsr_cpu_demo)
#   bash docs/textsr/cpu_demo.sh --data-only  # only check (and make) the data
#
# The committed docs/textsr/ files change only when OUTPUT is docs/textsr. The data must be what the docs table was
# made with (3,000 training pairs, 50 per test split, seed 0): data of another size under datasets/textzoom_synth
# (e.g. the 512-pair default of make_text_data.py, made by the README's first steps) is made again. With the optional
# OCR extra installed (pip install -e ".[textsr-ocr]") the evaluations add PP-OCRv4 accuracy (the *_ppocr options).
set -euo pipefail
REPO=${REPO:-$(cd "$(dirname "$0")/../.." && pwd)}
PY=${PY:-$REPO/.venv/bin/python}
OUTPUT=${1:-results/textsr_cpu_demo}
DATA=datasets/textzoom_synth
NUM_TRAIN=${NUM_TRAIN:-3000} NUM_TEST=${NUM_TEST:-50} SEED=${SEED:-0}  # the docs table's data
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

# The data the table needs: the manifest and every LMDB's num-samples must say NUM_TRAIN / NUM_TEST pairs, seed SEED.
if ! $PY - "$DATA" $NUM_TRAIN $NUM_TEST $SEED <<'EOF'
import json, os.path as osp, sys
import lmdb
root, num_train, num_test, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
want = {'train': num_train, 'test/easy': num_test, 'test/medium': num_test, 'test/hard': num_test}
try:
    with open(osp.join(root, 'manifest.json')) as f:
        manifest = json.load(f)
    have = {}
    for split in want:
        env = lmdb.open(osp.join(root, split), readonly=True, lock=False)
        with env.begin() as txn:
            have[split] = int(txn.get(b'num-samples'))
        env.close()
except Exception as err:  # no data yet, or unreadable
    print(f'{root}: no usable data ({type(err).__name__}); making it')
    sys.exit(1)
if have != want or manifest.get('seed') != seed:
    print(f'{root} holds {have} (seed {manifest.get("seed")}); this run needs {want} (seed {seed}): making it again')
    sys.exit(1)
print(f'{root}: {have}, seed {seed}: as needed')
EOF
then
  $PY $REPO/tools/data/make_text_data.py --output $DATA --num-train $NUM_TRAIN --num-test $NUM_TEST --seed $SEED
fi
[ "$OUTPUT" = --data-only ] && exit 0

$PY $REPO/tools/train.py -opt $REPO/options/train/textsr/demo_tsrn_synth.yml
$PY $REPO/tools/train.py -opt $REPO/options/train/textsr/demo_joint_synth.yml
SUFFIX=""
if $PY -c "import rapidocr_onnxruntime" 2>/dev/null; then SUFFIX=_ppocr; fi  # PP-OCRv4 accuracy when installed
RUNS=()
for opt in bicubic_synth demo_synth demo_joint_synth; do
  $PY $REPO/tools/test.py -opt $REPO/options/test/textsr/$opt$SUFFIX.yml
  RUNS+=(results/textsr_$opt${SUFFIX}_test)
done
mkdir -p "$OUTPUT"
for run in "${RUNS[@]}"; do cp "$run/split_metrics.jsonl" "$OUTPUT/$(basename "$run").jsonl"; done
$PY $REPO/tools/textsr/results_table.py --input "${RUNS[@]}" --output "$OUTPUT/cpu_demo_tables.md"
echo "tables: $OUTPUT/cpu_demo_tables.md"
