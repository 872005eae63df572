"""Tasks: what is predicted and how it is scored."""

from atomgraph.tasks.potential import PotentialTask, energy_forces_stress
from atomgraph.tasks.property import LOSSES, PropertyTask

__all__ = ["LOSSES", "PotentialTask", "PropertyTask", "energy_forces_stress"]
