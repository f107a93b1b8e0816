"""``qra-bench fit``: a surrogate fitted on a results table."""

from __future__ import annotations

from typing import Optional

import typer


__all__ = ["fit"]


def fit(
    table: str = typer.Option(..., help="Results table directory to fit on (its ok rows)."),
    target: str = typer.Option("eval_loss", help="Column to predict: accuracy, eval_loss, lm_loss."),
    model: str = typer.Option(
        "xgb", help="Surrogate: xgb (bagged XGBoost ensemble) or gp (Matern-5/2 Gaussian process)."
    ),
    out: Optional[str] = typer.Option(
        None, help="Artifact directory; default <data root>/surrogates/<table name>/<model>/ (see qra_bench.data)."
    ),
    seed: int = typer.Option(0, help="Seed of the model and of every split (same table and seed: same metrics)."),
    fidelity: str = typer.Option(
        "all",
        help="all (fidelity_frac as a feature), full (full-fidelity rows only), "
        "multi (predict full fidelity from the low-fidelity observation).",
    ),
    low_fidelity: Optional[float] = typer.Option(
        None, help="For --fidelity multi: the fraction of the run observed (default: the lowest in the table)."
    ),
    importance: Optional[str] = typer.Option(
        None,
        help="Priors JSON with importance_q and importance_r "
        "(default: cached priors of the table's model and task, else zeros).",
    ),
    arch: Optional[str] = typer.Option(
        None, help="Base model architecture (preset or config.json) when the table's model_name is neither."
    ),
) -> None:
    """Fit a surrogate on a results table; write the model, manifest.json (metrics, hashes) and plots."""
    from qra_bench.surrogate.fit import default_out, fit_surrogate

    out_dir = out or str(default_out(table, model))
    artifact = fit_surrogate(
        table,
        target=target,
        model=model,
        out=out_dir,
        seed=seed,
        fidelity=fidelity,
        importance=importance,
        arch=arch,
        low_fidelity=low_fidelity,
    )
    typer.echo(artifact.summary())
    typer.echo(f"wrote {out_dir}/manifest.json, model.pkl, predictions.csv, parity.png, learning_curve.png")
