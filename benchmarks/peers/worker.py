"""A benchmark worker: one framework, in its own environment, driven by run.py over stdin/stdout.

    PYTHON benchmarks/peers/worker.py FRAMEWORK

Commands, one JSON object per line on stdin; one JSON reply per line on the protocol stream (the
worker's original stdout; anything the frameworks print goes to stderr):

    {"op": "setup", "family": ..., "hparams": {...}, "frames": PATH, "mode": "train"|"infer"|"md",
     "threads": 1, "device": "cpu", "steps": 10}        -> {"params": ..., "versions": {...}}
    {"op": "time", "repeats": K}                        -> {"seconds": [K seconds per step],
                                                            "minor_faults": page faults per step}
    {"op": "quit"}
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import sys
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    framework = sys.argv[1]
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # framework prints must not corrupt the replies
    sys.stdout = sys.stderr
    import torch
    from common import read_frames, time_calls

    adapter = importlib.import_module(f"frameworks.{framework}")
    bench = None
    for line in sys.stdin:
        command = json.loads(line)
        try:
            if command["op"] == "setup":
                torch.set_num_threads(int(command.get("threads", 1)))
                torch.manual_seed(0)
                frames = read_frames(command["frames"])
                bench = adapter.setup(
                    command["family"],
                    command["hparams"],
                    frames,
                    command["mode"],
                    device=command.get("device", "cpu"),
                    steps=int(command.get("steps", 10)),
                )
                reply = {"params": bench.params, "versions": adapter.versions()}
            elif command["op"] == "time":
                faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                seconds = time_calls(bench.call, int(command["repeats"]))
                faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
                per_step = [s / bench.steps_per_call for s in seconds]
                reply = {"seconds": per_step, "minor_faults": faults / len(per_step) / bench.steps_per_call}
            elif command["op"] == "quit":
                break
            else:
                reply = {"error": f"unknown op {command['op']!r}"}
        except Exception as error:  # reported to run.py, which names the framework and section
            reply = {"error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()}
        protocol.write(json.dumps(reply) + "\n")


if __name__ == "__main__":
    main()
