"""``atomgraph`` command line, driven by YAML configs (see ``configs/``).

A mistake in the input (a bad config key, a missing file, a corrupt checkpoint, a structure that does
not parse) is reported as one line, ``error: ...``, with exit status 2; ``--debug`` (before the
command) shows the traceback as well.
"""

from __future__ import annotations

import gc
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Graphs and GNNs for molecules and crystals."
)

USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, PermissionError)
"""Errors that describe the input (ConfigError, RunLoadError and StructureError are ValueErrors)."""


def main(argv: list[str] | None = None) -> None:
    """The ``atomgraph`` console command: :data:`app` with input errors shown as one line."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    if debug:
        args.remove("--debug")
    try:
        status = app(args, standalone_mode=False)  # a command's typer.Exit(code) comes back as its code
    except typer.Abort:
        typer.echo("aborted", err=True)
        raise SystemExit(1) from None
    except USER_ERRORS as error:
        if debug:
            raise
        typer.echo(f"error: {error}", err=True)
        typer.echo("(run with --debug for the traceback)", err=True)
        raise SystemExit(2) from None
    except typer.Exit as done:
        raise SystemExit(done.exit_code) from None
    except Exception as error:
        if hasattr(error, "show") and hasattr(error, "exit_code"):  # click's usage errors: no traceback
            error.show()
            raise SystemExit(error.exit_code) from None
        raise
    if isinstance(status, int) and status != 0:
        raise SystemExit(status)


def console() -> None:
    """The ``atomgraph`` console script: :func:`main`, whose process then ends. What is alive when the
    command is done is frozen (``gc.freeze``), so the interpreter's teardown skips its garbage
    collections over it: ~10^6 objects of torch, its compiler and PyG, ~0.9 s of every command. atexit
    handlers still run, and the commands have closed their files by then. (Not in :func:`main`, which
    tests and other programs call in a process that goes on.)"""
    try:
        main()
    finally:
        gc.freeze()


@app.command()
def train(
    config: Annotated[Path, typer.Argument(help="YAML config (see configs/)")],
    overrides: Annotated[list[str] | None, typer.Argument(help="key.sub=value overrides")] = None,
    resume: Annotated[bool, typer.Option(help="continue the run from its last checkpoint")] = False,
    overwrite: Annotated[bool, typer.Option(help="replace a run already in the run directory")] = False,
    ensemble: Annotated[
        int | None, typer.Option(help="train this many members (seeds seed, seed+1, ...) as one ensemble")
    ] = None,
    bootstrap: Annotated[
        bool, typer.Option(help="ensemble members train on resamples of the training rows")
    ] = False,
) -> None:
    """Train a model; the run directory gets the config, split, checkpoints, metrics and plots."""
    from lightning.pytorch.utilities import rank_zero_only

    from atomgraph.evaluation.experiment import train_and_evaluate
    from atomgraph.training.config import load_config

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if bootstrap and (ensemble is None or ensemble < 2):
        raise ValueError(
            "--bootstrap resamples the training rows of ensemble members: give --ensemble N (N >= 2)"
        )
    flags = [f"ensemble.members={ensemble}"] * (ensemble is not None) + [
        "ensemble.bootstrap=true"
    ] * bootstrap
    run_dir = train_and_evaluate(
        load_config(config, [*(overrides or []), *flags]), resume=resume, overwrite=overwrite
    )
    if rank_zero_only.rank == 0:  # DDP: every rank runs this command
        typer.echo(f"run directory: {run_dir}")


@app.command()
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="a finished run directory")],
    device: Annotated[str, typer.Option(help="where the model runs: cpu | cuda")] = "cpu",
) -> None:
    """Re-evaluate a run on its test split (metrics.json, predictions, plots)."""
    from atomgraph.evaluation.report import evaluate_run

    evaluate_run(run_dir, device=device)


@app.command()
def predict(
    run_dir: Annotated[Path, typer.Argument(help="a finished run directory")],
    input_path: Annotated[Path, typer.Argument(help="SMILES CSV, XYZ, SDF, ... file")],
    output: Annotated[Path, typer.Option("-o", "--output", help="CSV to write")] = Path("predictions.csv"),
    refuse_unseen_elements: Annotated[
        bool, typer.Option(help="rows with elements never seen in training get an error, not a warning")
    ] = False,
    chunk_rows: Annotated[int, typer.Option(help="rows read, predicted and appended at a time")] = 1024,
    resume: Annotated[bool, typer.Option(help="go on from where a killed job's output ends")] = False,
    mc_dropout: Annotated[
        int, typer.Option(help="sigma from this many MC dropout passes (models with dropout)")
    ] = 0,
    latent_distance: Annotated[
        bool, typer.Option(help="sigma from the latent distance to the training graphs (models without one)")
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            help="worker processes: on the CPU they graph and predict chunks of the input; on "
            "a GPU they graph them while this process predicts (0: this process alone; default: one per "
            "core on a Linux CPU, else 0)",
            show_default=False,
        ),
    ] = None,
    top_k: Annotated[
        int | None, typer.Option(help="also write the best K rows to OUTPUT.topK.csv (bounded memory)")
    ] = None,
    rank_by: Annotated[
        str | None, typer.Option(help="column --top-k ranks by (a target, or e.g. TARGET_high)")
    ] = None,
    descending: Annotated[
        bool | None,
        typer.Option("--descending/--ascending", help="largest first; default: the target's own direction"),
    ] = None,
    device: Annotated[str, typer.Option(help="where the model runs: cpu | cuda")] = "cpu",
) -> None:
    """Predict the run's targets for every row of a file, streaming: memory stays flat, output grows as
    it goes, a killed job resumes; bad rows are reported and kept with an error. Ensembles,
    mean-variance and evidential models (or --mc-dropout N, or --latent-distance) add a sigma per target,
    recalibrated on the validation split, and a conformal 95 % interval."""
    from atomgraph.evaluation.predict import predict_file

    predict_file(
        run_dir,
        input_path,
        output,
        refuse_unseen_elements=refuse_unseen_elements,
        chunk_rows=chunk_rows,
        resume=resume,
        progress=True,
        mc_samples=mc_dropout,
        latent_distance=latent_distance,
        workers=workers,
        top_k=top_k,
        rank_by=rank_by,
        descending=descending,
        device=device,
    )


@app.command()
def explain(
    run_dir: Annotated[Path, typer.Argument(help="a finished run directory")],
    smiles: Annotated[str, typer.Argument(help="the molecule, as SMILES")],
    output: Annotated[Path, typer.Option("-o", "--output", help="PNG or SVG to write")] = Path("explain.png"),
    layer: Annotated[str, typer.Option(help="attention layer: an index or 'mean' (GAT models)")] = "mean",
    head: Annotated[str, typer.Option(help="attention head: an index or 'mean' (GAT models)")] = "mean",
    target: Annotated[int, typer.Option(help="output column for gradient importance")] = 0,
    threshold: Annotated[
        float | None, typer.Option(help="attention: highlight only bonds with at least this weight")
    ] = None,
) -> None:
    """Draw a molecule coloured by attention (GAT models: also its attention matrices per layer and per
    head, OUTPUT_matrices.png) or by gradient x input atom importance."""
    from atomgraph.evaluation.explain import explain as explain_molecule

    def selection(text: str) -> int | str:
        return text if text == "mean" else int(text)

    result = explain_molecule(
        run_dir,
        smiles,
        output,
        layer=selection(layer),
        head=selection(head),
        target=target,
        threshold=threshold,
    )
    prediction = ", ".join(f"{v:.4g}" for v in result["prediction"])
    typer.echo(f"{result['method']} -> {result['path']} (prediction: {prediction})")
    if "matrices_path" in result:
        diversity = ", ".join(f"{d:.2f}" for d in result["head_diversity"])
        typer.echo(f"attention matrices -> {result['matrices_path']} (head diversity per layer: {diversity})")


@app.command()
def export(
    run: Annotated[Path, typer.Argument(help="a finished run directory (or a checkpoint)")],
    output: Annotated[Path, typer.Option("-o", "--output", help="the file to write")] = Path("model.pt"),
    which: Annotated[str, typer.Option(help="best | last | auto (best, else last)")] = "auto",
) -> None:
    """Write a trained run to one file (weights, graph spec, targets, config; loadable with
    weights_only=True) that predict, relax, md and the screening commands accept in place of the run."""
    from atomgraph.runs import TrainedRun

    trained = TrainedRun.load(run, which)
    path = trained.export(output)
    what = f"{trained.model_name} on {trained.graph.describe()}, targets {trained.targets.names}"
    typer.echo(f"{what} -> {path}")


@app.command()
def export_metatomic(
    run: Annotated[
        Path, typer.Argument(help="a trained potential: run directory, checkpoint or exported file")
    ],
    output: Annotated[Path, typer.Argument(help="the metatomic model file to write (.pt)")],
) -> None:
    """Write a trained potential as a metatomic model (TorchScript), for LAMMPS (pair_style metatomic),
    i-PI, torch-sim and ASE (metatomic_ase.MetatomicCalculator). Needs metatomic-torch."""
    try:
        from atomgraph.md.metatomic_export import export_metatomic as write
    except ImportError as error:  # an optional dependency: a one-line error, not a traceback
        raise ValueError(f"export-metatomic needs pip install 'atomgraph[export]' ({error})") from None

    path = write(run, output)
    typer.echo(f"metatomic model -> {path}")


@app.command()
def check(
    run_dir: Annotated[Path, typer.Argument(help="a finished run directory")],
    samples: Annotated[int, typer.Option(help="test structures the symmetry checks use")] = 8,
    md_steps: Annotated[int, typer.Option(help="NVE steps of the energy-conservation check (0: none)")] = 100,
    worst: Annotated[int, typer.Option(help="worst test errors listed")] = 5,
) -> None:
    """Check a trained model: permutation, translation, rotation and reflection behaviour; for
    potentials forces against finite differences, NVE energy drift, smoothness at the cutoff;
    over-smoothing per layer; the worst test errors. Writes check.json; exit status 1 if a check fails."""
    from atomgraph.evaluation.checks import check_run

    checks = check_run(run_dir, samples=samples, md_steps=md_steps, worst=worst)
    for item in checks:
        typer.echo(item.line())
    failed = [c.name for c in checks if c.passed is False]
    typer.echo(
        f"{len(failed)} of {sum(c.passed is not None for c in checks)} checks failed"
        + (f": {', '.join(failed)}" if failed else "")
    )
    if failed:
        raise typer.Exit(1)


@app.command()
def models() -> None:
    """List the model names a config can use."""
    from atomgraph.models import available_models

    typer.echo("\n".join(available_models()))


@app.command()
def relax(
    run_dir: Annotated[Path, typer.Argument(help="a trained potential run (task.kind: potential)")],
    structure: Annotated[Path, typer.Argument(help="structure file (XYZ, CIF, POSCAR, ...); first one")],
    output: Annotated[Path, typer.Option("-o", "--output", help="relaxed structure")] = Path("relaxed.xyz"),
    fmax: Annotated[float, typer.Option(help="force threshold, eV/Å")] = 0.05,
    steps: Annotated[int, typer.Option(help="maximum optimiser steps")] = 500,
    optimizer: Annotated[str, typer.Option(help="bfgs | lbfgs | fire")] = "bfgs",
    cell: Annotated[bool, typer.Option(help="relax the cell too (zero pressure)")] = False,
    cell_filter: Annotated[str, typer.Option(help="frechet | exp")] = "frechet",
    trajectory: Annotated[Path | None, typer.Option(help="ASE .traj of every step")] = None,
    device: Annotated[str, typer.Option(help="cpu | cuda")] = "cpu",
    compile: Annotated[
        bool, typer.Option(help="the model's forward through torch.compile (pays on a GPU)")
    ] = False,
    force_sigma_limit: Annotated[
        float | None,
        typer.Option(help="ensembles: stop when the largest per-atom force spread exceeds it, eV/Å"),
    ] = None,
) -> None:
    """Relax a structure with a trained potential (ASE optimiser; optional cell relaxation). An ensemble's
    run relaxes with the members' mean and can stop where they disagree (--force-sigma-limit)."""
    from atomgraph.md.relax import relax_file

    kwargs = {"fmax": fmax, "steps": steps, "optimizer": optimizer, "cell": cell, "cell_filter": cell_filter}
    kwargs["force_sigma_limit"] = force_sigma_limit
    kwargs["logfile"] = "-"  # the optimiser's progress on stdout
    kwargs["compile"] = compile
    result = relax_file(run_dir, structure, output, device=device, trajectory=trajectory, **kwargs)
    state = "converged" if result.converged else "NOT converged"
    if result.stopped_uncertain:
        state = f"STOPPED (force spread {result.force_sigma:.3f} eV/Å above the limit)"
    typer.echo(
        f"{state} after {result.steps} steps: E {result.energy_start:.6f} -> {result.energy_end:.6f} eV, "
        f"max force {result.fmax_end:.4f} eV/Å -> {output}"
    )


@app.command()
def md(
    run_dir: Annotated[Path, typer.Argument(help="a trained potential run (task.kind: potential)")],
    structure: Annotated[Path, typer.Argument(help="structure file (XYZ, CIF, POSCAR, ...); first one")],
    ensemble: Annotated[str, typer.Option(help="nve (velocity Verlet) | nvt (Langevin)")] = "nve",
    temperature: Annotated[float, typer.Option(help="initial / thermostat temperature, K")] = 300.0,
    timestep: Annotated[float, typer.Option(help="time step, fs")] = 0.5,
    steps: Annotated[int, typer.Option(help="number of steps")] = 1000,
    friction: Annotated[float, typer.Option(help="Langevin friction, 1/fs")] = 0.01,
    trajectory: Annotated[Path | None, typer.Option(help="ASE .traj file")] = Path("md.traj"),
    logfile: Annotated[Path | None, typer.Option(help="time (ps), energies (eV), T (K)")] = Path("md.log"),
    interval: Annotated[int, typer.Option(help="write trajectory and log every n steps")] = 10,
    seed: Annotated[int, typer.Option(help="seed of the initial velocities and the thermostat")] = 0,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="final frame (extended XYZ)")] = None,
    device: Annotated[str, typer.Option(help="cpu | cuda")] = "cpu",
    compile: Annotated[
        bool, typer.Option(help="the model's forward through torch.compile (pays on a GPU)")
    ] = False,
    force_sigma_limit: Annotated[
        float | None,
        typer.Option(help="ensembles: act when the largest per-atom force spread exceeds it, eV/Å"),
    ] = None,
    on_uncertain: Annotated[str, typer.Option(help="stop | flag, past --force-sigma-limit")] = "stop",
) -> None:
    """Molecular dynamics with a trained potential: NVE or Langevin NVT. An ensemble's run uses the
    members' mean and can stop, or flag the steps, where they disagree (--force-sigma-limit)."""
    from atomgraph.md.dynamics import md_file

    result = md_file(
        run_dir,
        structure,
        output,
        device=device,
        compile=compile,
        ensemble=ensemble,
        temperature_K=temperature,
        timestep_fs=timestep,
        steps=steps,
        friction_per_fs=friction,
        trajectory=trajectory,
        logfile=logfile,
        loginterval=interval,
        seed=seed,
        force_sigma_limit=force_sigma_limit,
        on_uncertain=on_uncertain,
    )
    e = result.energies
    typer.echo(
        f"{result.steps} steps in {result.seconds:.1f} s ({result.steps_per_s:.1f} steps/s); total energy "
        f"{e[0, 3]:.6f} -> {e[-1, 3]:.6f} eV ({1000 * result.drift_per_atom:.3f} meV/atom change)"
    )
    if result.uncertain_steps:
        what = "stopped at step" if result.stopped else "force spread above the limit at steps"
        shown = ", ".join(map(str, result.uncertain_steps[:20])) + " ..." * (len(result.uncertain_steps) > 20)
        typer.echo(f"{what} {shown}")


@app.command()
def tune(
    config: Annotated[Path, typer.Argument(help="YAML config of the run to tune (see configs/)")],
    search: Annotated[Path, typer.Argument(help="search space YAML (see configs/search/)")],
    trials: Annotated[int, typer.Option(help="trials to finish (an interrupted study counts its own)")] = 20,
    study_dir: Annotated[
        Path | None, typer.Option(help="study folder (default: runs/<name>_tune); rerun to resume")
    ] = None,
    overrides: Annotated[list[str] | None, typer.Argument(help="key.sub=value overrides")] = None,
) -> None:
    """Hyperparameter search (Optuna TPE + pruning); writes best_config.yaml, trials.csv, importance.png."""
    from atomgraph.evaluation.tune import read_search
    from atomgraph.evaluation.tune import tune as run_search
    from atomgraph.training.config import load_config

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    loaded = load_config(config, overrides or [])
    folder = study_dir or Path("runs") / f"{loaded['name']}_tune"
    study = run_search(loaded, read_search(search), trials, folder, seed=loaded["seed"])
    done = [t for t in study.trials if t.value is not None and t.state.name == "COMPLETE"]
    if done:
        typer.echo(f"best {study.best_value:.5g} (trial {study.best_trial.number}): {study.best_params}")
    typer.echo(f"study folder: {folder} ({len(study.trials)} trials; best_config.yaml, trials.csv)")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def ablate(
    ctx: typer.Context,
    config: Annotated[Path, typer.Argument(help="YAML config (see configs/)")],
) -> None:
    """Depth x cutoff sweep: atomgraph ablate CONFIG \\[key=value ...] --cutoffs 4 6 8 --depths 2 3 4 5
    \\[--depth-key layers] \\[--out DIR]; one run per pair, ablation.json and error-vs-depth plots."""
    from atomgraph.evaluation.ablation import ablate as run_ablation
    from atomgraph.evaluation.ablation import parse_sweep_arguments
    from atomgraph.training.config import load_config

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        parsed = parse_sweep_arguments(ctx.args)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from error
    loaded = load_config(config, parsed["overrides"])
    result = run_ablation(loaded, parsed["cutoffs"], parsed["depths"], parsed["out"], parsed["key"])
    for row in result["runs"]:
        scores = "  ".join(f"{name} mae={entry['mae']:.4g}" for name, entry in row["test"].items())
        typer.echo(f"cutoff {row['cutoff']:g} Å  depth {row['depth']}:  {scores}")


def _add_application_commands() -> None:
    """The commands the applications register (``screen``, ``explain-complex``, ``screen-crystals``)."""
    import atomgraph.apps  # noqa: F401  (the applications register their commands on import)
    from atomgraph.apps.commands import registered_commands

    for command in registered_commands():
        app.command(command.name, **command.settings)(command.function)


_add_application_commands()

if __name__ == "__main__":
    console()
