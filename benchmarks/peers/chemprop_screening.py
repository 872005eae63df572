"""chemprop's side of ``benchmarks/screening.py``: run with the peers' Python (``.peers/main/bin/python``,
made by ``benchmarks/peers/install.sh``), never with the project's (chemprop is not installed there).

    python chemprop_screening.py run THREADS ARGS...   # the chemprop CLI (``chemprop ARGS...``) in this
                                                       # process with THREADS torch threads, then a line
                                                       # "RESULT seconds peak_kb children_peak_kb"
    python chemprop_screening.py describe MODEL.pt     # a JSON line: parameter count and hyperparameters

``seconds`` is the time ``chemprop.cli.main.main()`` takes (model loading, reading and featurising the
input, predicting, writing), measured after chemprop is imported, as screening.py measures
``atomgraph.cli.main.console`` (what the ``atomgraph`` command runs); the peaks are this process's
``ru_maxrss`` (and its children's, for ``--num-workers`` > 0).
"""

from __future__ import annotations

import json
import resource
import sys
import time


def run(threads: int, argv: list[str]) -> None:
    import torch

    torch.set_num_threads(threads)
    from chemprop.cli.main import main

    sys.argv = ["chemprop", *argv]
    start = time.perf_counter()
    main()
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print("RESULT", seconds, peak, children, flush=True)


def describe(model_path: str) -> None:
    import chemprop
    import torch
    from chemprop.models import MPNN

    model = MPNN.load_from_file(model_path, map_location="cpu")
    mp, predictor = model.message_passing, model.predictor
    mp_h, ffn_h = mp.hparams, predictor.hparams
    info = {
        "chemprop": chemprop.__version__,
        "torch": torch.__version__,
        "parameters": sum(p.numel() for p in model.parameters()),
        "hyperparameters": {
            "message_passing": type(mp).__name__,
            "message_hidden_dim": mp_h.get("d_h"),
            "depth": mp_h.get("depth"),
            "message_bias": mp_h.get("bias"),
            "undirected": mp_h.get("undirected"),
            "dropout": mp_h.get("dropout"),
            "activation": str(mp_h.get("activation")),
            "atom_features": mp_h.get("d_v"),
            "bond_features": mp_h.get("d_e"),
            "aggregation": type(model.agg).__name__,
            "batch_norm": type(model.bn).__name__ != "Identity",
            "ffn": type(predictor).__name__,
            "ffn_hidden_dim": ffn_h.get("hidden_dim"),
            "ffn_num_layers": ffn_h.get("n_layers"),
            "ffn_dropout": ffn_h.get("dropout"),
            "tasks": ffn_h.get("n_tasks"),
        },
    }
    print(json.dumps(info, default=str))


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "run":
        run(int(sys.argv[2]), sys.argv[3:])
    elif len(sys.argv) == 3 and sys.argv[1] == "describe":
        describe(sys.argv[2])
    else:
        sys.exit(__doc__)
