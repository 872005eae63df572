"""Tasks: what is predicted and how it is scored."""

from atomgraph.outputs.potential import PotentialTask, energy_forces_stress
from atomgraph.outputs.property import LOSSES, PropertyTask

__all__ = ["LOSSES", "PotentialTask", "PropertyTask", "energy_forces_stress"]
