"""Reading files written with ``torch.save`` safely: ``weights_only=True`` always (an explicit
argument wins over ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``), and an error that names the file and says it
is corrupt -- never torch's advice to retry with ``weights_only=False``, which would run whatever the
file holds."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch


def safe_torch_load(path: str | Path, what: str = "file") -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)``.

    Raises FileNotFoundError / IsADirectoryError / PermissionError unchanged, and ValueError
    ``"<path>: corrupt or unreadable <what> (...)"`` for random, truncated, empty or foreign bytes.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except pickle.UnpicklingError:  # torch's message advises the unsafe weights_only=False: not shown
        raise ValueError(
            f"{path}: corrupt or unreadable {what} (the safe weights_only loader rejects it)"
        ) from None
    except Exception as error:  # whatever random, truncated or foreign bytes make torch.load raise
        reason = (str(error).strip().splitlines() or [""])[0].split(". ")[0][:160]
        raise ValueError(
            f"{path}: corrupt or unreadable {what} ({type(error).__name__}{': ' if reason else ''}{reason})"
        ) from error
