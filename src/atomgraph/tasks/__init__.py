"""Tasks: what is predicted and how it is scored."""

from atomgraph.tasks.property import LOSSES, PropertyTask

__all__ = ["LOSSES", "PropertyTask"]
