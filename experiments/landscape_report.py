"""Markdown of the landscape report (:mod:`landscape`): each criterion with its target, our measurement and a
verdict."""

from __future__ import annotations

import math

import numpy as np


def _fmt(x: float, digits: int = 4) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{x:.{digits}f}"


def _drop(m: dict, axis: str) -> str:
    """An R^2 drop with its 90 % bootstrap interval, e.g. ``0.095 [0.041, 0.158]``."""
    lo, hi = m.get(f"r2_drop_without_{axis}_90", (float("nan"),) * 2)
    return f"{_fmt(m.get(f'r2_drop_without_{axis}'), 3)} [{_fmt(lo, 3)}, {_fmt(hi, 3)}]"


def markdown(report: dict) -> str:
    """The landscape criteria, each with its target, our measurement and a verdict."""
    lines = [
        "# Is the embedded default's landscape worth searching?",
        "",
        "Regenerate: `python experiments/landscape.py --damage --table datasets_cache/tables/tiny-news`.",
        "",
    ]
    rows = []
    if "damage" in report:
        d = report["damage"]
        cost = d["uniform_2bit_cost_nats"]
        mono = d["per_block_monotone"]
        n_mono = sum(bool(v) for v in mono.values())
        rows.append(
            ("uniform 2-bit costs >= 0.5 nats of held-out LM loss before fine-tuning", f"+{cost:.3f} nats", cost >= 0.5)
        )
        # An 8-bit block can score 1e-4 nats *better* than 16-bit: rounding noise, not a trend. Report the
        # largest inversion so the reader can judge it against the effects that matter (0.01-0.4 nats).
        per_block = d["per_block_lm_loss"]
        worst = max(
            max(float(v[a]) - float(v[b]) for a, b in zip(list(v)[:-1], list(v)[1:])) for v in per_block.values()
        )
        rows.append(
            (
                "loss rises monotonically as bits fall, block by block",
                f"{n_mono}/{len(mono)} blocks strictly monotone (to 1e-4 nats); largest inversion {worst:.5f} nats",
                n_mono == len(mono),
            )
        )
        if d.get("per_block_steps"):
            # The same criterion against the eval set's sampling error: an inversion counts only if the loss
            # falls by more than 2 paired standard errors over the held-out windows.
            steps = [(l, k, v) for l, ks in d["per_block_steps"].items() for k, v in ks.items()]
            inv = [(l, k, v) for l, k, v in steps if v["diff"] < 0]
            sig = [(l, k, v) for l, k, v in inv if v["diff"] < -2 * v["se"]]
            worst_z = min((v["diff"] / v["se"] for _, _, v in inv if v["se"] > 0), default=0.0)
            rows.append(
                (
                    f"supplementary: the same, an inversion counting only beyond 2 paired SEs over the "
                    f"{d['n_lm_windows']} held-out windows",
                    f"{len(inv)} of {len(steps)} steps down the ladder lower the loss, {len(sig)} beyond 2 SE "
                    f"(largest {worst_z:+.1f} SE)"
                    + "".join(
                        f"; block {l} {k}: {v['diff']:+.5f} nats ({v['diff'] / v['se']:+.1f} SE)" for l, k, v in sig
                    ),
                    not sig,
                )
            )
        if d.get("trial_alone_2_threads_s"):
            alone = d["trial_alone_2_threads_s"]
            rows.append(
                (
                    "one trial takes at most 45 s on 2 CPU cores (the default trial alone, 2 threads, "
                    f"median of {len(alone)})",
                    f"{float(np.median(alone)):.1f} s",
                    float(np.median(alone)) <= 45,
                )
            )
        lines += [
            f"Zero-step damage: model `{d['model']}` sha256 `{d['model_sha256'][:16]}...`, task `{d['task']}`, "
            f"backend `{d['backend']}`; uniform LM loss by bits: "
            + ", ".join(f"{b}: {v['lm_loss']:.3f}" for b, v in d["uniform"].items()),
            "",
        ]
    views = ([report["landscape"]] if "landscape" in report else []) + list(report.get("views", []))
    for i, t in enumerate(views):
        if i or "landscape" not in report:  # another table of criteria: another task, or the mean over tasks
            if rows:
                lines += ["| criterion | measured | holds |", "|---|---|---|"]
                lines += [f"| {c} | {m} | {'yes' if ok else '**no**'} |" for c, m, ok in rows]
            rows = []
            several = "+" in t.get("task", "")
            lines += [
                "",
                f"## {'Mean over tasks' if several else 'Task'} {t.get('task', '')}"
                + (": the paper's objective" if several else ""),
                "",
                f"`python experiments/landscape.py --tasks-tables {' '.join(t['table_hashes'])}`"
                + (
                    ": every metric is the mean over the tasks of the same configuration and seed; trial time is "
                    "the sum."
                    if several
                    else "."
                ),
                "",
            ]
        hashes = ", ".join(f"`{h[:16]}...`" for h in t["table_hashes"].values())
        lines += [
            f"Fine-tuned landscape: table `{t['table']}` (hash{'es' if len(t['table_hashes']) > 1 else ''} {hashes}), "
            f"{t['n_full_fidelity_rows']} full-fidelity rows, budget {t['budget']} = {t['budget_bytes']:,} bytes.",
            "",
        ]
        rows.append(
            (
                "supplementary: median trial time in the table (1 thread each, two trials sharing 2 cores; "
                "the criterion is timed alone above)",
                f"{t['median_trial_s']:.1f} s",
                True,
            )
        )
        for metric in ("eval_loss", "accuracy", "focus_accuracy"):
            m = t.get(metric, {})
            if not m:
                continue
            noise = m.get("noise_std", float("nan"))
            rows.append(
                (
                    f"[{metric}] bits matter at rank 8: |2-bit - 16-bit| >= 5 x seed noise",
                    f"{_fmt(m.get('uniform_2bit_r8'))} vs {_fmt(m.get('uniform_16bit_r8'))}: "
                    f"{_fmt(m.get('bits_effect_r8_over_noise'), 1)} x noise {_fmt(noise)} "
                    f"({m.get('n_repeated_configs', 0)} configs x >= {m.get('noise_min_seeds', 3)} seeds)",
                    m.get("bits_effect_r8_over_noise", 0) >= 5 and m.get("noise_min_seeds", 3) >= 3,
                )
            )
            rows.append(
                (
                    f"[{metric}] spread std of >= 30 random configs in budget >= 5 x noise std",
                    f"{_fmt(m.get('spread_std'))} / {_fmt(noise)} = {_fmt(m.get('spread_over_noise'), 1)} "
                    f"over {m.get('n_random_feasible', 0)} configs",
                    m.get("spread_over_noise", 0) >= 5 and m.get("n_random_feasible", 0) >= 30,
                )
            )
            rows.append(
                (
                    f"[{metric}] both axes: dropping avg bits / avg log2 rank lowers R^2 by >= 0.10",
                    f"R^2 {_fmt(m.get('r2_both'), 3)}; drop w/o bits {_drop(m, 'bits')}, "
                    f"w/o rank {_drop(m, 'rank')}; corr(avg bits, avg log2 rank) "
                    f"{_fmt(m.get('corr_bits_rank'), 2)}",
                    min(m.get("r2_drop_without_bits", 0), m.get("r2_drop_without_rank", 0)) >= 0.10,
                )
            )
            for name, x in m.get("samples", {}).items():
                rows.append(
                    (
                        f"[{metric}] the same two criteria on the sample `{name}` (`{x['spec']}`) alone",
                        f"spread {_fmt(x['spread_over_noise'], 1)} x noise over {x['n']} configs; R^2 "
                        f"{_fmt(x['r2_both'], 3)}, drop w/o bits {_drop(x, 'bits')}, w/o rank "
                        f"{_drop(x, 'rank')}; corr {_fmt(x['corr_bits_rank'], 2)}",
                        x["n"] >= 30
                        and x["spread_over_noise"] >= 5
                        and min(x["r2_drop_without_bits"], x["r2_drop_without_rank"]) >= 0.10,
                    )
                )
            if math.isfinite(m.get("rank_effect_16bit", float("nan"))):
                rows.append(
                    (
                        f"[{metric}] supplementary: rank 4 -> 16 at uniform 16 / 4 bits",
                        f"{_fmt(m['rank_effect_16bit'])} / {_fmt(m['rank_effect_4bit'])}"
                        + (
                            f" ({abs(m['rank_effect_16bit']) / noise:.1f}x / {abs(m['rank_effect_4bit']) / noise:.1f}x noise)"
                            if noise and math.isfinite(noise)
                            else ""
                        ),
                        True,
                    )
                )
            if "best_uniform" in m and "best_mixed" in m:
                u, x = m["best_uniform"], m["best_mixed"]
                gain = (u["mean"] - x["mean"]) * (1 if metric == "eval_loss" else -1)
                rows.append(
                    (
                        f"[{metric}] supplementary: best measured configuration in budget, uniform vs mixed",
                        f"uniform {_fmt(u['mean'])} (bits {u['bits'][0]}, rank {u['ranks'][0]}; {u['n_configs']} "
                        f"configs) vs mixed {_fmt(x['mean'])} ({x['n_configs']} configs): mixed "
                        + (f"better by {gain:.4f}" if gain > 0 else f"worse by {-gain:.4f}")
                        + (f" ({abs(gain) / noise:.1f}x noise)" if noise and math.isfinite(noise) else ""),
                        True,
                    )
                )
            if "per_block" in m:
                pb = m["per_block"]
                cost = pb["two_bit_cost"]
                rows.append(
                    (
                        f"[{metric}] supplementary (not a criterion): additive per-block model of all "
                        f"{pb['n_configs']} configs (2-bit and 3-bit indicator and log2 rank per block)",
                        f"in-sample R^2 {_fmt(pb['r2'], 3)} ({3 * len(cost) + 1} parameters); one block at 2 bits costs {_fmt(cost[0], 3)} (block 0), "
                        f"{_fmt(float(np.median(cost[1:])), 3)} (median of the others); doubling every rank: "
                        f"{pb['rank_doubling_effect']:+.4f}",
                        True,
                    )
                )
            if "structured_r2" in m:
                rows.append(
                    (
                        f"[{metric}] supplementary (not a criterion): block 0 / last block at 2 bits, number of "
                        "other 2-bit blocks, avg log2 rank",
                        f"R^2 {_fmt(m['structured_r2'], 3)}; drop w/o bits {_fmt(m['structured_r2_drop_without_bits'], 3)}, "
                        f"w/o rank {_fmt(m['structured_r2_drop_without_rank'], 3)}",
                        True,
                    )
                )
        for metric in ("accuracy", "focus_accuracy"):
            acc = t.get(metric, {})
            if not acc:
                continue
            gap = acc.get("uniform_16bit_r16", float("nan")) - acc.get("uniform_2bit_r4", float("nan"))
            rows.append(
                (
                    f"[{metric}] uniform 2-bit r4 vs 16-bit r16 differ by >= 10 points of task accuracy",
                    f"{_fmt(acc.get('uniform_2bit_r4'))} vs {_fmt(acc.get('uniform_16bit_r16'))}: {100 * gap:.1f} points "
                    f"(SE {_fmt(100 * acc.get('gap_se', float('nan')), 1)} over seeds)",
                    abs(gap) >= 0.10,
                )
            )
    lines += ["| criterion | measured | holds |", "|---|---|---|"]
    lines += [f"| {c} | {m} | {'yes' if ok else '**no**'} |" for c, m, ok in rows]
    return "\n".join(lines) + "\n"
