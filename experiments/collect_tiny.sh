#!/usr/bin/env bash
# Collect a shared table of the embedded default (tiny; task $TASK, default news) in the order that makes partial tables
# useful soonest: anchors, the uniform-4bit landscape design, seed repeats (the noise floor), then the
# stratified design for the surrogates. Every step resumes, so rerunning this script continues the table.
set -euo pipefail
cd "$(dirname "$0")/.."
Q=".venv/bin/qra-bench collect --model tiny --task ${TASK:-news} --workers ${WORKERS:-2} --threads 1 --out datasets_cache/tables/tiny-${TASK:-news}"
$Q --design anchors --seeds 0
$Q --design file --design-file experiments/designs/landscape.jsonl --no-anchors --seeds 0
$Q --design anchors --seeds 1,2
$Q --design file --design-file experiments/designs/landscape-repeats.jsonl --no-anchors --seeds 1,2
# 36 configurations measured once (spread over memory) at two more seeds: with the above, >= 60 configs x 3 seeds
[ "${TASK:-news}" = news ] && $Q --design file --design-file experiments/designs/repeats-60.jsonl --no-anchors --seeds 1,2
# 20 of those 36 had their one measurement at seed 1 or 2 (live benchmark runs), so seeds 1,2 gave them only one
# more: they get seed 0 as well.
[ "${TASK:-news}" = news ] && $Q --design file --design-file experiments/designs/repeats-60-seed0.jsonl --no-anchors --seeds 0
# cipher: 150 more configurations drawn uniformly within uniform-4bit (the first 30 of landscape-180.jsonl are
# landscape.jsonl), so the landscape criteria's "random configurations that fit the budget" have more than 30;
[ "${TASK:-news}" = cipher ] && $Q --design file --design-file experiments/designs/landscape-180.jsonl --no-anchors --seeds 0
# then the configurations of the news stratified design measured within uniform-4bit, shuffled
# (experiments/transfer_design.py), so the landscape criteria read the same random sample on both tasks.
[ "${TASK:-news}" = cipher ] && $Q --design file --design-file experiments/designs/news-in-budget.jsonl --no-anchors --seeds 0
$Q --design stratified --n 1200 --seeds 0
# news on configurations 31-180 of landscape-180.jsonl (the first 30 are landscape.jsonl, already above), into a
# table of its own so the table the surrogates are fitted on stays as it was (landscape.py reads both as one task).
if [ "${TASK:-news}" = news ]; then
  REST=$(mktemp --suffix .jsonl); tail -n +31 experiments/designs/landscape-180.jsonl > "$REST"
  ${Q/datasets_cache\/tables\/tiny-news/experiments\/tables\/tiny-news-uniform} --design file --design-file "$REST" --no-anchors --seeds 0
fi
# cipher at learning rate 7e-4 (the landscape's accuracy gap: experiments/probes/README.md), a table of its own: the
# anchors at three seeds (noise floor and the gap), then the uniform-within-budget sample.
if [ "${TASK:-news}" = cipher ]; then
  C7="${Q/datasets_cache\/tables\/tiny-cipher/experiments\/tables\/tiny-cipher-lr7e-4} --lr 0.0007"
  $C7 --design anchors --seeds 0,1,2
  $C7 --design file --design-file experiments/designs/landscape-180.jsonl --no-anchors --seeds 0
  # then the stratified sample, into a table of its own (the figures above stay bound to the first one's hash)
  ${C7/tiny-cipher-lr7e-4/tiny-cipher-lr7e-4-stratified} --design file --design-file experiments/designs/news-in-budget.jsonl --no-anchors --seeds 0
fi
