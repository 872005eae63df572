"""The complexes application's commands: ``atomgraph screen`` and ``atomgraph explain-complex``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from atomgraph.apps.commands import register_command


def screen_ligands(
    run_dir: Annotated[
        Path, typer.Argument(help="a finished protein-ligand run (complex or sequence model)")
    ],
    protein: Annotated[Path, typer.Option("--protein", help="protein PDB/mmCIF, in the ligands' frame")],
    ligands: Annotated[Path, typer.Option("--ligands", help="SDF, MOL2 or PDBQT file, one pose per record")],
    output: Annotated[Path, typer.Option("-o", "--output", help="ranked CSV to write")] = Path("screen.csv"),
    batch_size: Annotated[int, typer.Option(help="complexes per prediction batch")] = 16,
    acquisition: Annotated[
        str,
        typer.Option(
            help="rank by 'mean' or 'ucb' (mean + kappa sigma; ensembles, mean-variance, evidential)"
        ),
    ] = "mean",
    kappa: Annotated[float, typer.Option(help="sigma weight of the ucb acquisition")] = 1.0,
    chunk_rows: Annotated[
        int, typer.Option(help="ligand records read, scored and written at a time (memory stays flat)")
    ] = 1024,
    resume: Annotated[bool, typer.Option(help="go on from OUTPUT.progress after a kill")] = False,
    device: Annotated[str, typer.Option(help="where the model runs: cpu | cuda")] = "cpu",
    latent_distance: Annotated[
        bool,
        typer.Option(help="sigma from the latent distance to the training complexes (no sigma of its own)"),
    ] = False,
) -> None:
    """Rank ligand poses by predicted affinity; ligands that fail keep a row with the error. The ligand
    file is streamed (--chunk-rows at a time, resumable with --resume) and the rows ranked in bounded
    memory. Runs with a sigma add it per target; --acquisition ucb ranks by the upper confidence bound."""
    from atomgraph.apps.complexes.screen import screen

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    summary = screen(
        run_dir, protein, ligands, output, batch_size=batch_size, acquisition=acquisition, kappa=kappa,
        chunk_rows=chunk_rows, resume=resume, device=device, latent_distance=latent_distance,
    )  # fmt: skip
    typer.echo(
        f"ranked {summary.scored} of {summary.rows} ligands -> {summary.output}; {summary.failed} failed"
    )


def explain_complex_command(
    run_dir: Annotated[Path, typer.Argument(help="a finished protein-ligand run (complex model)")],
    protein: Annotated[Path, typer.Argument(help="protein PDB/mmCIF")],
    ligand: Annotated[Path, typer.Argument(help="ligand SDF/MOL2/PDBQT (first record)")],
    output_dir: Annotated[Path, typer.Option("-o", "--output-dir", help="folder for the files")] = Path(
        "explain"
    ),
) -> None:
    """Per-atom importance as B-factors (protein PDB, ligand SDF/PDB), the interaction decomposition and,
    for a cross-attention model, its attention table and heat map."""
    from atomgraph.apps.complexes.complex import load_complex
    from atomgraph.apps.complexes.explain import explain_complex
    from atomgraph.apps.complexes.screen import scoring_model

    scorer = scoring_model(run_dir)
    complex_ = load_complex(protein, ligand, scorer.settings.pocket_radius, waters=scorer.settings.waters)
    paths = explain_complex(scorer.module, complex_, output_dir, scorer.settings)
    typer.echo("\n".join(f"{kind}: {path}" for kind, path in paths.items()))


register_command(screen_ligands, "screen", app="complexes")
register_command(explain_complex_command, "explain-complex", app="complexes")
