#!/usr/bin/env bash
# Regenerate every shipped result from the committed tables, in dependency order: table cards, surrogates,
# claims, landscape, live evaluations to target, ranking fidelity, the sweep and the speed benchmarks, then the
# headline scenario's surrogates, card, evaluations to target and claims.
# Stop every collection first (the surrogates and figures must see one table state). About 25 minutes on
# 2 cores, most of it the GP fit and the claims. STEPS="cards fit claims ..." runs a subset.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
Q=.venv/bin/qra-bench
T=datasets_cache/tables/tiny-news
# news trials on the rest of the uniform-within-budget sample, kept apart from $T (the surrogates' table)
U=experiments/tables/tiny-news-uniform
# cipher fine-tuned at lr 7e-4: anchors at 3 seeds and the uniform sample, then (a table of its own) the stratified one
C7=experiments/tables/tiny-cipher-lr7e-4,experiments/tables/tiny-cipher-lr7e-4-stratified
S=surrogates/tiny-news
R=experiments/results
H=datasets_cache/tables/tiny-cipher
STEPS=${STEPS:-"cards fit claims landscape e2t ranking speed headline"}
has() { [[ " $STEPS " == *" $1 "* ]]; }

if has cards; then
  for t in datasets_cache/tables/*/; do $Q table report "$t"; done
fi
if has fit; then
  for kind in xgb gp; do
    $Q fit --table $T --target eval_loss --model $kind --importance $S/importance.json --out $S/$kind
  done
fi
if has claims; then
  # On the tiny-news scenario (its table $T, budget and surrogate $S/xgb); the table-1 pick is reused from
  # $R/autoqra_pick_tiny-news.jsonl (decided once; --repick for a new one).
  OMP_NUM_THREADS=1 $PY experiments/claims.py --scenario tiny-news --claim evals_to_target &
  OMP_NUM_THREADS=1 $PY experiments/claims.py --scenario tiny-news \
    --claim table1,spread,proxy,compensation,screening,ablations
  wait
fi
if has landscape; then
  $PY experiments/landscape.py --damage --table $T \
    --sample uniform=experiments/designs/landscape-180.jsonl --sample stratified=stratified:1200 \
    --tasks-tables $T experiments/tables/tiny-bbc \
    --tasks-tables experiments/tables/tiny-cipher-landscape \
    --tasks-tables $T,$U --tasks-tables $T,$U experiments/tables/tiny-cipher-landscape \
    --tasks-tables $C7 --tasks-tables $T,$U $C7
  $PY experiments/smollm2_check.py --report
fi
if has e2t; then
  RUNS="$R/ranking_live/a $R/ranking_live/b $R/ranking_live/c $R/e2t_live/*"
  $PY experiments/evals_to_target_live.py --runs $RUNS --tolerance 0.005
  $PY experiments/evals_to_target_live.py --runs $RUNS --tolerance 0.01 --out $R/evals_to_target_live_tol0.01
  $PY experiments/evals_to_target_live.py --runs $RUNS --metric accuracy --tolerance 0.005
fi
if has ranking; then
  $PY experiments/ranking_fidelity.py --live $R/ranking_live/a $R/ranking_live/b $R/ranking_live/c
fi
if has speed; then
  $PY benchmarks/surrogate_speed.py --table $T
  $PY benchmarks/search_speed.py
  $Q sweep --table $T --surrogate $S/xgb --budgets 0.9xfp16-lora:1.0xfp16-lora:30 --out /tmp/qra-sweep30
fi
if has headline; then
  # The headline scenario (tiny-cipher): surrogates and card on its table, evaluations to target on the new
  # surrogate (runs are redone: they belong to the surrogate) and on the live runs already made (--no-run: a live
  # run fine-tunes, which only the collection script does), and the paper's claims on it.
  for kind in xgb gp; do $Q fit --table $H --target eval_loss --model $kind; done
  $Q scenarios --card tiny-cipher --write
  rm -rf $R/e2t/tiny-cipher/surrogate/runs
  $PY experiments/evals_to_target.py --backend surrogate \
    --methods autoqra,autoqra-warm,random,smac-hpo,evolution,optuna-tpe --seeds 0-9 --max-evals 100
  $PY experiments/evals_to_target.py --backend table+live --methods autoqra,random,smac-hpo --seeds 0-9 \
    --max-evals 20 --no-run --compare surrogate
  $PY experiments/claims.py --scenario tiny-cipher --claim table1,spread,proxy,compensation,screening,ablations \
    --out $R/tiny-cipher
fi
