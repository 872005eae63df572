"""mace-torch 0.3 (``mace.modules.MACE``, the body-ordered ACE-style model) for the peer harness.

MACE's standard construction (``RealAgnosticInteractionBlock`` first, then residual ones, a non-linear
readout of 16x0e), with the harness's ``hidden_irreps``, ``max_ell`` (degree of the edge harmonics),
``correlation`` (body order - 1), interaction count, Bessel count and ``avg_num_neighbors``; polynomial
cutoff exponent 6 as in MACE's defaults. MACE's own neighbour list (matscipy) and data loader; forces
from ``compute_force=True``; MD through its ``MACECalculator`` on the model in memory.
"""

from __future__ import annotations

import numpy as np
import torch
from common import Bench, MDBench, ModelBench

# e3nn 0.4.4 (mace-torch's pin) reads its Wigner constants with a plain torch.load, which torch >= 2.6
# does weights-only; the file holds slices besides tensors. A slice runs no code: allow it, nothing more.
torch.serialization.add_safe_globals([slice])


def versions() -> dict[str, str]:
    import mace

    return {"mace-torch": mace.__version__, "torch": torch.__version__}


def setup(family: str, hparams: dict, frames, mode: str, device: str = "cpu", steps: int = 10) -> Bench:
    from e3nn import o3
    from mace import data, modules, tools
    from mace.tools import torch_geometric

    if family != "mace":
        raise ValueError(f"mace-torch has no {family} model")
    torch.set_default_dtype(torch.float32)
    z_table = tools.AtomicNumberTable(sorted({int(z) for a in frames for z in a.numbers}))
    model = modules.MACE(
        r_max=hparams["cutoff"],
        num_bessel=hparams["num_bessel"],
        num_polynomial_cutoff=6,
        max_ell=hparams["max_ell"],
        interaction_cls=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
        interaction_cls_first=modules.interaction_classes["RealAgnosticInteractionBlock"],
        num_interactions=hparams["interactions"],
        num_elements=len(z_table),
        hidden_irreps=o3.Irreps(hparams["hidden_irreps"]),
        MLP_irreps=o3.Irreps("16x0e"),
        atomic_energies=np.zeros(len(z_table)),
        avg_num_neighbors=hparams["avg_num_neighbors"],
        atomic_numbers=z_table.zs,
        correlation=hparams["correlation"],
        gate=torch.nn.functional.silu,
    ).to(device)
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if mode == "md":
        from mace.calculators import MACECalculator

        calculator = MACECalculator(models=model.eval(), device=device, default_dtype="float32")
        return MDBench(calculator, frames, steps, params)
    atomic = [
        data.AtomicData.from_config(data.config_from_atoms(a), z_table=z_table, cutoff=hparams["cutoff"])
        for a in frames
    ]
    loader = torch_geometric.dataloader.DataLoader(atomic, batch_size=len(atomic), shuffle=False)
    batch = next(iter(loader)).to(device).to_dict()

    def forward(training: bool):
        inputs = {
            k: v.clone() if torch.is_tensor(v) and v.is_floating_point() else v for k, v in batch.items()
        }
        out = model(inputs, training=training, compute_force=True)
        return out["energy"].view(-1), out["forces"]

    return ModelBench(model, forward, frames, mode, torch.float32)
