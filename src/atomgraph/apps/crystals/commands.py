"""The crystals application's command: ``atomgraph screen-crystals``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from atomgraph.apps.commands import register_command


def screen_crystals(
    run_dir: Annotated[Path, typer.Argument(help="a finished run directory")],
    folder: Annotated[Path, typer.Argument(help="folder (or tar archive) of CIF/POSCAR files")],
    output: Annotated[Path, typer.Option("-o", "--output", help="ranked CSV to write")] = Path("ranked.csv"),
    target: Annotated[str | None, typer.Option(help="target to rank by (default: the run's first)")] = None,
    descending: Annotated[
        bool | None,
        typer.Option("--descending/--ascending", help="largest first; default: the target's own direction"),
    ] = None,
    workers: Annotated[int | None, typer.Option(help="processes for parsing (default: every core)")] = None,
    acquisition: Annotated[
        str,
        typer.Option(
            help="rank by 'mean' or 'ucb' (mean +- kappa sigma; ensembles, mean-variance, evidential)"
        ),
    ] = "mean",
    kappa: Annotated[float, typer.Option(help="sigma weight of the ucb acquisition")] = 1.0,
    chunk_rows: Annotated[int, typer.Option(help="structures read and predicted at a time")] = 4096,
    resume: Annotated[bool, typer.Option(help="go on from OUTPUT.progress after a kill")] = False,
    window: Annotated[
        tuple[str, float, float] | None,
        typer.Option(help="TARGET LOW HIGH: only predictions in [LOW, HIGH] rank (e.g. band_gap 1.0 1.5)"),
    ] = None,
    max_e_hull: Annotated[
        float | None,
        typer.Option(help="eV/atom: only candidates this close to the convex hull of the run's data rank"),
    ] = None,
    device: Annotated[str, typer.Option(help="where the model runs: cpu | cuda")] = "cpu",
    latent_distance: Annotated[
        bool,
        typer.Option(help="sigma from the latent distance to the training structures (models without one)"),
    ] = False,
) -> None:
    """Predict every structure of a folder and rank them; unreadable files are reported and skipped.
    Runs with a sigma add it per target; --acquisition ucb ranks by the optimistic bound. Streams: memory
    stays flat whatever the library's size, and --resume goes on after a kill."""
    from atomgraph.apps.crystals.screening import screen_structures

    screen_structures(run_dir, folder, output, target, descending, workers, acquisition=acquisition,
                      kappa=kappa, chunk_rows=chunk_rows, resume=resume, window=window,
                      max_e_hull=max_e_hull, device=device, latent_distance=latent_distance)  # fmt: skip


register_command(screen_crystals, "screen-crystals", app="crystals")
