#!/usr/bin/env bash
# Collect the real-LLM scenario's table (`smollm2-sft`): SmolLM2-135M-Instruct fine-tuned on the shipped
# Alpaca-format news instructions (loaded with `datasets`), scored with lm-eval on the three shipped offline
# multiple-choice tasks at every checkpoint; the main metric is their mean accuracy. The recipe is sized for a
# CPU (12 steps of batch 8 at 128 tokens, checkpoints at 50 % and 100 %, 20 documents per lm-eval task, torchao
# group 64 because SmolLM2's hidden size 576 is not a multiple of 128): about 6 CPU-minutes and 6.6 GB of memory
# per trial on the 2-core development machine (the table's card counts the CPU time), so its about 127 trials
# take about 12 core-hours. Order:
# the 15 uniform anchors, a memory-stratified design to 100 configurations (anchors included), the anchors at
# seed 1 for the seed noise, then the 5 best fitting configurations and the best fitting uniform one at three
# seeds (the card's best mixed and best uniform). Every step resumes. When it is done: fit the xgb and gp surrogates on `--target accuracy` and write the card
# (`qra-bench scenarios --card smollm2-sft --write`).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-datasets_cache/tables/smollm2-sft}
TASK=$(.venv/bin/python -c "from qra_bench.scenarios import SMOLLM2_SFT; print(SMOLLM2_SFT)")
Q=(.venv/bin/qra-bench collect --model smollm2-135m --task "$TASK" --eval shipped --eval-limit 20 --steps 12
  --fidelities 0.5,1.0 --group-size 64 --workers "${WORKERS:-2}" --threads 1 --out "$OUT")
"${Q[@]}" --design anchors --seeds 0
"${Q[@]}" --design stratified --n 100 --seeds 0
"${Q[@]}" --design anchors --seeds 1
(cd experiments && ../.venv/bin/python headline_design.py best --table "../$OUT" --budget uniform-4bit \
  --metric accuracy --k 5 --with-uniform --out designs/smollm2-best.jsonl)
"${Q[@]}" --design file --design-file experiments/designs/smollm2-best.jsonl --no-anchors --seeds 0,1,2
