"""``atomgraph`` command line, driven by YAML configs (see ``configs/``)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Graphs and GNNs for molecules and crystals."
)


@app.command()
def train(
    config: Annotated[Path, typer.Argument(help="YAML config (see configs/)")],
    overrides: Annotated[list[str] | None, typer.Argument(help="key.sub=value overrides")] = None,
    resume: Annotated[bool, typer.Option(help="continue the run from its last checkpoint")] = False,
) -> None:
    """Train a model; the run directory gets the config, split, checkpoints, metrics and plots."""
    from atomgraph.training.config import load_config
    from atomgraph.training.run import train as run_training

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    run_dir = run_training(load_config(config, overrides or []), resume=resume)
    typer.echo(f"run directory: {run_dir}")


@app.command()
def evaluate(run_dir: Annotated[Path, typer.Argument(help="a finished run directory")]) -> None:
    """Re-evaluate a run on its test split (metrics.json, predictions, plots)."""
    from atomgraph.evaluation.report import evaluate_run

    evaluate_run(run_dir)


@app.command()
def predict(
    run_dir: Annotated[Path, typer.Argument(help="a finished run directory")],
    input_path: Annotated[Path, typer.Argument(help="SMILES CSV, XYZ, SDF, ... file")],
    output: Annotated[Path, typer.Option("-o", "--output", help="CSV to write")] = Path("predictions.csv"),
) -> None:
    """Predict the run's targets for every row of a file; bad rows are reported and kept with an error."""
    from atomgraph.evaluation.predict import predict_file

    predict_file(run_dir, input_path, output)


@app.command()
def explain(
    run_dir: Annotated[Path, typer.Argument(help="a finished run directory")],
    smiles: Annotated[str, typer.Argument(help="the molecule, as SMILES")],
    output: Annotated[Path, typer.Option("-o", "--output", help="PNG or SVG to write")] = Path("explain.png"),
    layer: Annotated[str, typer.Option(help="attention layer: an index or 'mean' (GAT models)")] = "mean",
    head: Annotated[str, typer.Option(help="attention head: an index or 'mean' (GAT models)")] = "mean",
    target: Annotated[int, typer.Option(help="output column for gradient importance")] = 0,
) -> None:
    """Draw a molecule coloured by attention (GAT, GATv2) or by gradient x input atom importance."""
    from atomgraph.evaluation.explain import explain as explain_molecule

    def selection(text: str) -> int | str:
        return text if text == "mean" else int(text)

    result = explain_molecule(
        run_dir, smiles, output, layer=selection(layer), head=selection(head), target=target
    )
    prediction = ", ".join(f"{v:.4g}" for v in result["prediction"])
    typer.echo(f"{result['method']} -> {result['path']} (prediction: {prediction})")


@app.command()
def models() -> None:
    """List the model names a config can use."""
    from atomgraph.models import available_models

    typer.echo("\n".join(available_models()))


if __name__ == "__main__":
    app()
