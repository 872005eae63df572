"""NequIP 0.19 (``nequip.model.NequIPGNNModel``) for the peer harness, at atomgraph's hyperparameters.

atomgraph's ``hidden_irreps`` "32x0e + 16x1o + 8x2e" is NequIP's ``l_max=2, parity=False,
num_features=[32, 16, 8]``; radial MLP depth/width, Bessel count (trainable, as atomgraph's),
polynomial cutoff exponent and ``avg_num_neighbors`` are passed through. NequIP's default
self-connection (``convnet_sc``) is a tensor product of the features with the one-hot atom type, more
work per atom than atomgraph's linear one; family ``nequip_no_sc`` turns it off (NequIP then has none).
NequIP keeps positions and energy sums in float64 (its global state) with a float32 model. NequIP's own
neighbour list (its default backend) and batching; forces (and the loss's energies) from its
``ForceStressOutput``.
"""

from __future__ import annotations

import torch
from ase.data import chemical_symbols
from common import Bench, MDBench, ModelBench
from nequip.data import AtomicDataDict
from nequip.data.ase import from_ase
from nequip.data.transforms import ChemicalSpeciesToAtomTypeMapper, NeighborListTransform
from nequip.model import NequIPGNNModel
from nequip.utils.global_state import set_global_state


def versions() -> dict[str, str]:
    import nequip

    return {"nequip": nequip.__version__, "torch": torch.__version__}


def setup(family: str, hparams: dict, frames, mode: str, device: str = "cpu", steps: int = 10) -> Bench:
    if family not in ("nequip", "nequip_no_sc"):
        raise ValueError(f"nequip has no {family} model")
    irreps = [part.strip() for part in hparams["hidden_irreps"].split("+")]
    features = [int(part.split("x")[0]) for part in irreps]
    set_global_state()  # NequIP refuses to build a model before it (float64 default dtype, TF32 off)
    type_names = sorted({chemical_symbols[z] for a in frames for z in a.numbers})
    model = NequIPGNNModel(
        seed=0,
        model_dtype="float32",
        type_names=type_names,
        r_max=hparams["cutoff"],
        num_layers=hparams["layers"],
        l_max=len(features) - 1,
        parity=False,
        num_features=features,
        radial_mlp_depth=hparams["radial_layers"],
        radial_mlp_width=hparams["radial_hidden"],
        num_bessels=hparams["num_basis"],
        bessel_trainable=True,
        polynomial_cutoff_p=hparams["envelope_exponent"],
        avg_num_neighbors=hparams["avg_num_neighbors"],
        per_type_energy_scales=1.0,
        per_type_energy_shifts=0.0,
        convnet_sc=hparams.get("self_connection", True),  # NequIP's default: a type-dependent tensor product
    ).to(device)
    transforms = [
        ChemicalSpeciesToAtomTypeMapper(model_type_names=type_names),
        NeighborListTransform(r_max=hparams["cutoff"]),
    ]
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if mode == "md":
        from nequip.integrations.ase import NequIPCalculator

        return MDBench(NequIPCalculator(model.eval(), device, transforms=transforms), frames, steps, params)
    data_list = []
    for atoms in frames:
        data = from_ase(atoms)
        for transform in transforms:
            data = transform(data)
        data_list.append(data)
    batch = AtomicDataDict.to_(AtomicDataDict.batched_from_list(data_list), torch.device(device))

    def forward(training: bool):
        out = model(dict(batch))
        return out[AtomicDataDict.TOTAL_ENERGY_KEY].view(-1), out[AtomicDataDict.FORCE_KEY]

    return ModelBench(model, forward, frames, mode, torch.float32)
