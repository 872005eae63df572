"""schnetpack 2.0's PaiNN (``schnetpack.representation.PaiNN``) as a potential, for the peer harness.

The model is schnetpack's usual neural network potential: pairwise distances as input module, PaiNN
with atomgraph's radial basis (Bessel, ``num_rbf``) and cutoff function (cosine), an atomwise energy
head and autograd forces (``schnetpack.atomistic.Forces``). Inputs come from schnetpack's
``AtomsConverter`` with its ASE neighbour list; MD through ``schnetpack.interfaces.SpkCalculator``
(the same converter and neighbour list, every step).
"""

from __future__ import annotations

from typing import TypeVar

import torch
import torch.utils.data.dataloader
from common import Bench, MDBench, ModelBench

# schnetpack 2.0/2.1 import the typing helper T_co from torch's dataloader module, which torch 2.13 no
# longer defines; it is only a type variable, so the harness puts one back before importing schnetpack
if not hasattr(torch.utils.data.dataloader, "T_co"):
    torch.utils.data.dataloader.T_co = TypeVar("T_co", covariant=True)


def versions() -> dict[str, str]:
    import schnetpack

    return {"schnetpack": getattr(schnetpack, "__version__", "2.0"), "torch": torch.__version__}


def build(hparams: dict):
    import schnetpack as spk

    cutoff = hparams["cutoff"]
    painn = spk.representation.PaiNN(
        n_atom_basis=hparams["hidden"],
        n_interactions=hparams["interactions"],
        radial_basis=spk.nn.BesselRBF(n_rbf=hparams["num_rbf"], cutoff=cutoff),
        cutoff_fn=spk.nn.CosineCutoff(cutoff),
    )
    return spk.model.NeuralNetworkPotential(
        representation=painn,
        input_modules=[spk.atomistic.PairwiseDistances()],
        output_modules=[
            spk.atomistic.Atomwise(n_in=hparams["hidden"], output_key="energy"),
            spk.atomistic.Forces(energy_key="energy", force_key="forces"),
        ],
    )


def setup(family: str, hparams: dict, frames, mode: str, device: str = "cpu", steps: int = 10) -> Bench:
    import schnetpack.transform as trn
    from schnetpack.interfaces import AtomsConverter

    if family != "painn":
        raise ValueError(f"schnetpack has no {family} model in this harness")
    model = build(hparams).to(device)
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if mode == "md":
        from schnetpack.interfaces import SpkCalculator

        class InMemoryCalculator(SpkCalculator):
            """schnetpack's calculator on the model in memory (its own loader unpickles a file and
            casts the model to float64; the harness compares float32 models)."""

            def _load_model(self, model_file):
                return model.eval()

        calculator = InMemoryCalculator(
            model_file="(in memory)",
            neighbor_list=trn.ASENeighborList(cutoff=hparams["cutoff"]),
            energy_key="energy", force_key="forces", energy_unit="eV", position_unit="Ang",
            device=device, dtype=torch.float32,
        )  # fmt: skip
        return MDBench(calculator, frames, steps, params)
    converter = AtomsConverter(
        neighbor_list=trn.ASENeighborList(cutoff=hparams["cutoff"]), device=device, dtype=torch.float32
    )
    inputs = converter(frames)

    def forward(training: bool):
        model.do_postprocessing = False
        out = model({k: v.clone() if v.is_floating_point() else v for k, v in inputs.items()})
        return out["energy"].view(-1), out["forces"]

    return ModelBench(model, forward, frames, mode, torch.float32)
