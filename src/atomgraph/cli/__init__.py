"""Command line: ``atomgraph train|evaluate|predict|...``."""
