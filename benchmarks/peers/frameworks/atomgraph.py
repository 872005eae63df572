"""atomgraph's potentials (SchNet, PaiNN, the NequIP-style and the MACE-style models) for the peer harness.

Graphs: atomgraph's radius graph (vesin), built once per system in ``setup``; energies and forces by
the same path as training and the ASE calculator (``AtomgraphModule.compute``: autograd forces)."""

from __future__ import annotations

import sys

import torch
from common import Bench, MDBench, ModelBench
from torch_geometric.data import Batch

#: harness family -> atomgraph's registered model
MODELS = {
    "schnet": "schnet", "painn": "painn", "nequip": "equivariant", "nequip_no_sc": "equivariant",
    "mace": "mace",
}  # fmt: skip


def mace_arguments(hparams: dict, frames: list) -> dict:
    """The harness's MACE settings (mace-torch's names) as atomgraph's ``mace`` arguments."""
    from e3nn import o3

    hidden = o3.Irreps(hparams["hidden_irreps"])
    return {
        "channels": hidden[0].mul,
        "hidden_l": hidden.lmax,
        "sh_lmax": hparams["max_ell"],
        "correlation": hparams["correlation"],
        "layers": hparams["interactions"],
        "num_basis": hparams["num_bessel"],
        "envelope_exponent": 6,  # as the harness's mace-torch adapter
        "avg_num_neighbors": hparams["avg_num_neighbors"],
        "elements": sorted({int(z) for atoms in frames for z in atoms.numbers}),
    }


def versions() -> dict[str, str]:
    import atomgraph

    return {"atomgraph": getattr(atomgraph, "__version__", "0.1.0"), "torch": torch.__version__}


def module(family: str, hparams: dict, cutoff: float):
    from atomgraph.training.module import AtomgraphModule

    return AtomgraphModule(
        model={"name": MODELS[family], "reductions": ["sum"], **hparams},
        targets=[{"name": "energy", "unit": "eV", "reduction": "sum"}],
        task={"kind": "potential"},
        training={},
        graph={"kind": "radius", "cutoff": cutoff},
    )


def setup(
    family: str, hparams: dict, frames, mode: str, device: str = "cpu", steps: int = 10, compile: bool = False
) -> Bench:
    """``compile``: the model's forward through torch.compile (infer and md modes only: a training step
    differentiates the forces again, which torch.compile does not support; ``atomgraph_compiled`` asks)."""
    from atomgraph.graphs.radius_graph import radius_graph
    from atomgraph.training.compile import compile_forward

    hparams = dict(hparams)
    cutoff = float(hparams.pop("cutoff"))
    hparams.pop("self_connection", None)  # a NequIP option: atomgraph's self-connection is a linear map
    if family == "mace":
        hparams = mace_arguments(hparams, frames)
    net = module(family, hparams, cutoff).to(device)
    if compile:
        compile_forward(net.model, notify=lambda message: print(message, file=sys.stderr))
    if mode == "md":
        from atomgraph.md import Calculator

        calculator = Calculator(net, skin=0.5, device=device, allow_unseen_elements=True)
        return MDBench(calculator, frames, steps, sum(p.numel() for p in net.model.parameters()))
    batch = Batch.from_data_list([radius_graph(a, cutoff) for a in frames]).to(device)

    def forward(training: bool):
        out = net.compute(batch, forces=True, training=training)
        return out["energy"], out["forces"]

    bench = ModelBench(net.model, forward, frames, mode, torch.float32)
    net.train(mode == "train")
    return bench
