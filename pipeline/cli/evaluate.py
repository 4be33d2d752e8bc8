"""``pipeline evaluate``: score a trained run."""
from __future__ import annotations

from pathlib import Path

import click

from pipeline.cli import load_params_from


@click.command(context_settings={"show_default": True})
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--split", default=None, help="Manifest split [default: evaluate.split]")
@click.pass_context
def evaluate(ctx: click.Context, run_dir: str, split: str | None) -> None:
    """Macro mAP (PR-AUC), ROC-AUC and F1 of RUN_DIR's best checkpoint, known labels only.

    Writes eval-<split>.json and per_class-<split>.csv into the run folder.
    """
    from stages.evaluate import run

    params = load_params_from(ctx)
    m = run(params, run_dir=run_dir, split=split)
    click.echo(f"{m['run']} on {m['split']} ({m['clips']} clips): mAP {m['map']:.4f}, ROC-AUC {m['roc_auc']:.4f}, "
               f"macro F1 {m['f1_macro']:.4f} ({_coverage(m)}); {m['cpu_ms_per_clip']:.1f} ms per clip on CPU "
               f"-> {Path(run_dir) / ('eval-' + m['split'] + '.json')}")


def _coverage(m: dict) -> str:
    """``"mAP and ROC-AUC over 18 of 20 classes"``: a class without a known positive or negative is left out."""
    total, covered = m["n_classes"], m["classes_covered"]
    text = f"mAP over {covered['map']} of {total} classes"
    if covered["roc_auc"] != covered["map"]:
        text += f", ROC-AUC over {covered['roc_auc']}"
    return text + ("" if covered["macro_f1"] == covered["map"] else f", F1 over {covered['macro_f1']}")
