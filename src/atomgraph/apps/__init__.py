"""Applications: each plugs its datasets, graph presets, splits, evaluation protocols and CLI commands
into the registries of the generic code. Importing this package registers them all; the registries
do that on their first look-up, so generic code never imports an application.
"""

from atomgraph.apps import complexes, crystals, potentials  # noqa: F401  (registers them)
