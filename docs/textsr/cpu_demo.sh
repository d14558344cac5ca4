#!/usr/bin/env bash
# The CPU-budget run of docs/textsr.md: synthetic TextZoom-like data, TSRN alone, joint TSRN + CRNN, then the
# E/M/H/A table for bicubic, TSRN and joint. One thread; run from the repository root (or any working directory
# with the repository's tools/ and options/ reachable through $REPO).
set -euo pipefail
REPO=${REPO:-$(cd "$(dirname "$0")/../.." && pwd)}
PY=${PY:-$REPO/.venv/bin/python}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
[ -f datasets/textzoom_synth/manifest.json ] || \
  $PY $REPO/tools/data/make_text_data.py --output datasets/textzoom_synth --num-train 3000 --num-test 50
$PY $REPO/tools/train.py -opt $REPO/options/train/textsr/demo_tsrn_synth.yml
$PY $REPO/tools/train.py -opt $REPO/options/train/textsr/demo_joint_synth.yml
for opt in bicubic_synth demo_synth demo_joint_synth; do
  $PY $REPO/tools/test.py -opt $REPO/options/test/textsr/$opt.yml
done
$PY $REPO/tools/textsr/results_table.py --input results/textsr_bicubic_synth_test results/textsr_demo_synth_test \
  results/textsr_demo_joint_synth_test
