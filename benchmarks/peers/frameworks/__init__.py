"""One module per framework: ``setup(family, hparams, frames, mode, device, steps) -> Bench`` and
``versions()``. Each imports only its own framework (it runs in that framework's environment)."""
