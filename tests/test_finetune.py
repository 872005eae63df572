"""Fine-tuning from a trained run (config section ``init``): exactly the chosen weights are loaded,
exactly the chosen parameters stay fixed, learning-rate groups follow the prefixes, and an incompatible
source is refused with a message."""

from __future__ import annotations

import json

import ase.io
import pytest
import torch
from conftest import random_molecules, write_xyz
from test_training import load, structures_config

from atomgraph.evaluation.experiment import train_and_evaluate
from atomgraph.runs import TrainedRun, initial_weights
from atomgraph.training.config import ConfigError
from atomgraph.training.module import AtomgraphModule


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A small SchNet trained on the energies of random H/C/O molecules."""
    root = tmp_path_factory.mktemp("finetune_source")
    xyz = root / "mols.xyz"
    write_xyz(xyz, n=40, seed=0)
    run_dir = train_and_evaluate(load(root, structures_config(root, xyz, epochs=2)), progress=False)
    return root, xyz, run_dir


def _state(run_dir, which: str = "auto") -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in TrainedRun.load(run_dir, which).module.model.state_dict().items()}


def test_an_encoder_is_loaded_frozen_where_asked_and_trained_elsewhere(source, tmp_path):
    _, xyz, run_dir = source
    before = _state(run_dir)  # init.from loads the best checkpoint, as every command does
    overrides = [
        f"init.from={run_dir}",
        "init.load=encoder",
        "init.freeze=[embedding, interactions.0]",
        "init.lr_factors={interactions: 0.1}",
        "data.targets=[gap]",  # a new target: the head starts afresh
    ]
    config = load(tmp_path, structures_config(tmp_path, xyz, run="tuned", epochs=2), overrides)
    tuned = train_and_evaluate(config, progress=False)
    after = _state(tuned, "last")
    frozen = [k for k in before if k.startswith(("embedding.", "interactions.0."))]
    trained = [k for k in before if k.startswith("interactions.1.")]
    assert frozen and trained
    for k in frozen:  # loaded, then never changed
        torch.testing.assert_close(after[k], before[k], rtol=0, atol=0)
    assert all(not torch.equal(after[k], before[k]) for k in trained if after[k].is_floating_point())
    module = TrainedRun.load(tuned).module
    assert all(not p.requires_grad for n, p in module.model.named_parameters() if n in frozen)
    # the training module of the stored arguments: the frozen parts in no group, the lr factors applied
    groups = AtomgraphModule(**module.hparams).configure_optimizers()[0][0].param_groups
    lrs = sorted((g["lr_factor"], len(g["params"])) for g in groups)
    n_inter = sum(1 for n, p in module.model.named_parameters() if n.startswith("interactions.1."))
    assert lrs[0] == (0.1, n_inter) and lrs[1][0] == 1.0  # interactions.0 is frozen: not in any group
    assert config["training"]["lr"] * 0.1 == pytest.approx(min(g["lr"] for g in groups))


def test_load_all_takes_every_tensor_and_the_head_too(source, tmp_path):
    _, xyz, run_dir = source
    from atomgraph.training.finetune import load_initial_weights
    from atomgraph.training.module import AtomgraphModule

    config = load(tmp_path, structures_config(tmp_path, xyz, run="all"), [f"init.from={run_dir}"])
    initial = initial_weights(config)
    hparams = TrainedRun.load(run_dir).module.hparams
    torch.manual_seed(123)
    module = AtomgraphModule(hparams["model"], hparams["targets"], hparams["task"], hparams["training"],
                             graph=hparams["graph"])  # fmt: skip
    loaded = load_initial_weights(module.model, initial, "all", ("head",))
    assert set(loaded) == set(initial.state)
    for k, v in module.model.state_dict().items():
        torch.testing.assert_close(v, initial.state[k], rtol=0, atol=0)
    torch.manual_seed(123)
    fresh = AtomgraphModule(hparams["model"], hparams["targets"], hparams["task"], hparams["training"],
                            graph=hparams["graph"])  # fmt: skip
    encoder = load_initial_weights(fresh.model, initial, "encoder", ("head",))
    assert not any(k.startswith("head.") for k in encoder)
    head = [k for k in initial.state if k.startswith("head.") and initial.state[k].is_floating_point()]
    assert head and all(not torch.equal(fresh.model.state_dict()[k], initial.state[k]) for k in head)


def test_an_incompatible_source_is_refused(source, tmp_path):
    _, xyz, run_dir = source

    def refused(overrides: list[str], match: str, path=xyz) -> None:
        config = load(
            tmp_path, structures_config(tmp_path, path, run="x"), [f"init.from={run_dir}", *overrides]
        )
        with pytest.raises(ConfigError, match=match):
            train_and_evaluate(config, progress=False, overwrite=True)

    refused(
        ["model.name=painn", "model.hidden=16", "model.interactions=1"], r"a 'schnet' model cannot initialise"
    )
    refused(["data.graph.cutoff=3.5"], r"trained on radius graph, 4 Å.*this run builds radius graph, 3\.5 Å")
    refused(["data.targets=[energy, gap]"], r"tensors do not fit: head\..*init\.load: encoder")
    refused(["init.freeze=[embeding]"], r"init\.freeze: 'embeding' matches no parameter")
    with_nitrogen = random_molecules(10, seed=5)
    for atoms in with_nitrogen:
        atoms.numbers[0] = 7
    ase.io.write(tmp_path / "nitrogen.xyz", with_nitrogen, format="extxyz")
    refused(
        [f"data.cache={tmp_path / 'cache_n'}"],
        r"elements the source never saw \(N\)",
        tmp_path / "nitrogen.xyz",
    )


def test_fine_tuning_keeps_the_sources_avg_num_neighbors(tmp_path):
    """``avg_num_neighbors`` is a constant, not a weight: a fine-tuned run uses the source's (its weights were
    trained with it), not one derived from its own rows, unless the config sets one."""
    from conftest import write_xyz

    equivariant = {"name": "equivariant", "hidden_irreps": "4x0e + 2x1o", "layers": 1, "num_basis": 4,
                   "radial_hidden": 8}  # fmt: skip
    source_xyz, target_xyz = tmp_path / "source.xyz", tmp_path / "target.xyz"
    write_xyz(source_xyz, n=20, seed=1)
    write_xyz(target_xyz, n=20, seed=2)
    source_config = {**structures_config(tmp_path, source_xyz, run="source", epochs=1), "model": equivariant}
    source_dir = train_and_evaluate(load(tmp_path, source_config), progress=False)
    source_value = TrainedRun.load(source_dir).module.hparams["model"]["avg_num_neighbors"]
    config = {**structures_config(tmp_path, target_xyz, run="tuned", epochs=1), "model": equivariant}
    fresh = load(tmp_path, {**config, "name": "fresh", "run_dir": str(tmp_path / "fresh")})
    fresh_value = TrainedRun.load(train_and_evaluate(fresh, progress=False)).module.hparams["model"][
        "avg_num_neighbors"
    ]
    assert fresh_value != pytest.approx(source_value)  # the two sets have different densities
    tuned = load(tmp_path, config, [f"init.from={source_dir}"])
    tuned_dir = train_and_evaluate(tuned, progress=False)
    assert TrainedRun.load(tuned_dir).module.hparams["model"]["avg_num_neighbors"] == pytest.approx(
        source_value
    )


def _labelled_frames(path, n: int, seed: int, elements: tuple[int, ...]) -> list:
    """``n`` random molecules of ``elements`` with EMT energies (eV) and forces (eV/Å), written as extXYZ."""
    import numpy as np
    from ase.calculators.emt import EMT

    frames = random_molecules(n, seed=seed)
    rng = np.random.default_rng(seed)
    for atoms in frames:
        atoms.numbers = rng.choice(elements, size=len(atoms))
        atoms.calc = EMT()
        atoms.info = {"energy": atoms.get_potential_energy()}
        atoms.arrays["forces"] = atoms.get_forces()
        atoms.calc = None
    ase.io.write(path, frames, format="extxyz")
    return frames


def test_a_potential_is_fine_tuned_from_one_system_to_another(tmp_path):
    """A SchNet potential trained on H/C/O molecules, fine-tuned on C/H ones (other molecules, a subset of
    the elements) with its embedding frozen: the embedding is exactly the source's afterwards, every other
    parameter moved, and the tuned run gives energies and forces."""
    import numpy as np

    from atomgraph.md import Calculator

    source_xyz, target_xyz = tmp_path / "hco.xyz", tmp_path / "ch.xyz"
    _labelled_frames(source_xyz, 24, seed=0, elements=(1, 6, 8))
    target = _labelled_frames(target_xyz, 24, seed=1, elements=(1, 6))
    potential = {"task": {"kind": "potential"}}
    source_config = {**structures_config(tmp_path, source_xyz, run="source", epochs=1), **potential}
    source_dir = train_and_evaluate(load(tmp_path, source_config), progress=False)
    before = _state(source_dir)  # init.from loads the best checkpoint
    config = {**structures_config(tmp_path, target_xyz, run="tuned", epochs=2), **potential}
    tuned_dir = train_and_evaluate(
        load(tmp_path, config, [f"init.from={source_dir}", "init.freeze=[embedding]"]), progress=False
    )
    after = _state(tuned_dir, "last")
    run = TrainedRun.load(tuned_dir, "last")
    metrics = json.loads((tuned_dir / "metrics.json").read_text())
    assert run.is_potential and "forces" in metrics["test"]  # trained and scored on the forces too
    frozen = [k for k in before if k.startswith("embedding.")]
    trained = [n for n, p in run.module.model.named_parameters() if p.requires_grad]
    assert frozen and trained and not set(frozen) & set(trained)
    for k in frozen:  # loaded, then never changed
        torch.testing.assert_close(after[k], before[k], rtol=0, atol=0)
    assert all(not torch.equal(after[k], before[k]) for k in trained)
    molecule = target[0].copy()
    molecule.calc = Calculator(run.module)
    energy, forces = molecule.get_potential_energy(), molecule.get_forces()
    assert np.isfinite(energy) and forces.shape == (len(molecule), 3) and np.isfinite(forces).all()
