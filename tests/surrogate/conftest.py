"""Fixtures of the surrogate tests: a stand-in results table (a fixture of the code, not of any result).

Targets come from :func:`standin_accuracy`, a known smooth function of bits, ranks and fidelity plus seeded
Gaussian "seed noise". No trial produced these numbers and nothing may cite them as results: they only let
the tests check that a surrogate can learn a known function, that the hash binding, determinism, the CLI and
the error messages work. Tests of the surrogate on real trials use ``tests/fixtures/tiny-news-small/``.
Every other column is a plausible placeholder, except ``mem_predicted_bytes``, which comes from the real
memory model so the fit's memory check runs as it does on a real table.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from qra_bench.arch import load_arch
from qra_bench.memory import MemoryModel, MemorySettings
from qra_bench.space import QRConfig, SearchSpace
from qra_bench.table import ResultsTable, TrialRow

ARCH = "tiny"
BACKEND = "hqq"
NOISE_STD = 0.01
MODEL_SHA, TASK_SHA = "ab" * 32, "cd" * 32  # placeholders: the cache lookup of importance priors matches on them
TRIAL_SETTINGS = {"batch_size": 16, "max_steps": 100, "quant": {"backend": BACKEND, "group_size": 128}}


def standin_accuracy(cfg: QRConfig, seed: int, fidelity_frac: float) -> float:
    """About 0.2 .. 0.9: early blocks need bits, late blocks rank, rank partly compensates low bits; a learning
    curve over the fidelity; plus seeded Gaussian noise of std ``NOISE_STD``."""
    bits = np.log2(np.asarray(cfg.bits, dtype=float))  # 1 .. 4
    rank = np.log2(np.asarray(cfg.ranks, dtype=float))  # 2 .. 4
    w_bits = np.linspace(1.0, 0.4, len(bits)) / len(bits)
    w_rank = np.linspace(0.4, 1.0, len(rank)) / len(rank)
    quality = (
        4.0 * (w_bits @ np.tanh(bits - 1.0))
        + 1.5 * (w_rank @ (rank - 2.0))
        + 0.1 * np.mean((4.0 - bits) * (rank - 2.0))
    )
    base = 0.2 + 0.7 / (1.0 + np.exp(-(quality - 2.5)))
    curve = 1.0 - 0.35 * np.exp(-3.0 * fidelity_frac)
    digest = hashlib.sha256(f"{cfg.hash}|{seed}|{fidelity_frac:.6f}".encode()).digest()
    noise = np.random.default_rng(int.from_bytes(digest[:8], "little")).normal(0.0, NOISE_STD)
    return float(base * curve + noise)


def standin_rows(
    n_configs: int = 60,
    seeds: tuple[int, ...] = (0, 1),
    fractions: tuple[float, ...] = (0.5, 1.0),
    design_seed: int = 0,
) -> list[TrialRow]:
    arch = load_arch(ARCH)
    settings = MemorySettings(
        backend=BACKEND,
        weight_dtype_bytes=4,
        meta_dtype_bytes=4,
        lora_dtype_bytes=4,
        grad_dtype_bytes=4,
        optimizer_state_bytes=4,
        batch_size=16,
        seq_len=97,
        activation_dtype_bytes=4,
    )
    memory = MemoryModel(arch, settings)
    space: SearchSpace = memory.space
    configs = space.sample_batch(np.random.default_rng(design_seed), n_configs)
    rows = []
    for cfg in configs:
        total = memory.total_bytes(cfg)
        for seed in seeds:
            for frac in fractions:
                acc = standin_accuracy(cfg, seed, frac)
                step = int(round(frac * TRIAL_SETTINGS["max_steps"]))
                rows.append(
                    TrialRow(
                        config_hash=cfg.hash,
                        bits=cfg.bits,
                        ranks=cfg.ranks,
                        n_blocks=cfg.n_blocks,
                        avg_bits=cfg.avg_bits,
                        avg_rank=cfg.avg_rank,
                        seed=seed,
                        fidelity=step,
                        fidelity_frac=frac,
                        max_steps=TRIAL_SETTINGS["max_steps"],
                        status="ok",
                        eval_loss=2.0 - 2.0 * acc,
                        accuracy=acc,
                        lm_loss=4.0 + (1.0 - acc),
                        mem_predicted_bytes=total,
                        model_name=ARCH,
                        task_name="standin",
                        model_sha256=MODEL_SHA,
                        task_data_sha256=TASK_SHA,
                        backend=BACKEND,
                        quant_settings=json.dumps(TRIAL_SETTINGS["quant"]),
                        trial_settings=json.dumps(TRIAL_SETTINGS),
                        lib_versions="{}",
                        code_version="standin",
                        host="standin",
                        device="cpu",
                        started_at="2026-01-01T00:00:00+00:00",
                        finished_at="2026-01-01T00:00:01+00:00",
                        run_id="standin",
                    )
                )
    return rows


def write_standin_table(path: Path, **kwargs) -> Path:
    ResultsTable(path).append(standin_rows(**kwargs))
    return path


@pytest.fixture(scope="session")
def standin_table(tmp_path_factory) -> Path:
    """40 configurations x 2 seeds x 2 fidelities (160 rows)."""
    return write_standin_table(tmp_path_factory.mktemp("standin") / "standin-table", n_configs=40)


@pytest.fixture(scope="session")
def fast_xgb() -> dict:
    """Smaller ensembles for tests that check plumbing, not quality."""
    return {"n_estimators": 20, "calibration_folds": 2}
