"""atomgraph: graphs from molecules, crystals and protein-ligand complexes, and the GNNs that learn on them.

The folders follow the data flow::

    structures/ -> graphs/ -> data/ -> models/ -> tasks/ -> training/ -> runs.py -> md/, evaluation/
        -> apps/ (crystals, potentials, complexes: plugged into the registries) -> cli/

Each package imports only those before it (checked by ``lint-imports``; contract in pyproject.toml).

Units inside the package: Å, eV, eV/Å, eV/Å^3.
"""

__version__ = "0.1.0"

from atomgraph.allocator import keep_freed_memory

keep_freed_memory()
