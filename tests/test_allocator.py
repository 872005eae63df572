"""``import atomgraph`` keeps freed memory in the process: a step that allocates and frees the same tensors
again does not fault its pages back in (atomgraph.allocator)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from atomgraph.allocator import glibc_tunables, malloc_tuned_by_environment, running_on_glibc

pytestmark = pytest.mark.skipif(not running_on_glibc(), reason="mallopt settings are glibc's")

#: a training step's pattern: tensors of 1-20 MB kept for the backward pass, temporaries freed at once
STEP = """
import resource
import torch
import atomgraph  # noqa: F401

sizes = [(k * 7919) % 20 + 1 for k in range(30)]

def step():
    kept = []
    for mb in sizes:
        kept.append(torch.ones(mb * 262144))
        temporary = torch.ones(mb * 131072)
        del temporary
    kept.clear()

for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
    step()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 3)
"""


def faults_per_step(**environment: str) -> float:
    """Minor page faults per repeated step in a fresh interpreter with ``environment`` added."""
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES" and not k.startswith("MALLOC_")}
    env.pop("ATOMGRAPH_MALLOC", None)
    env.pop("LD_PRELOAD", None)
    env.update(environment)
    done = subprocess.run([sys.executable, "-c", STEP], env=env, capture_output=True, text=True, check=True)
    return float(done.stdout.split()[-1])


def transparent_hugepages_always() -> bool:
    """With THP "always" the heap is backed by 2 MiB pages: glibc's defaults fault ~512x less, and the
    counts below say nothing."""
    try:
        return "[always]" in Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return False


@pytest.mark.skipif(transparent_hugepages_always(), reason="2 MiB pages: too few faults to compare")
def test_freed_memory_is_reused_not_faulted_in_again():
    glibc_defaults = faults_per_step(ATOMGRAPH_MALLOC="system")
    assert glibc_defaults > 10_000  # ~80,000 here: the pattern does make glibc trim and re-fault
    assert faults_per_step() < glibc_defaults / 100
    # the GLIBC_TUNABLES form handed to the peers' workers has the same effect without atomgraph's call
    assert faults_per_step(ATOMGRAPH_MALLOC="system", GLIBC_TUNABLES=glibc_tunables()) < glibc_defaults / 100


@pytest.mark.parametrize(
    ("environment", "tuned"),
    [
        ({}, False),
        ({"ATOMGRAPH_MALLOC": "system"}, True),
        ({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=1"}, True),
        ({"GLIBC_TUNABLES": "glibc.pthread.rseq=0"}, False),
        ({"MALLOC_ARENA_MAX": "2"}, True),
        ({"MALLOC_TOP_PAD_": "0"}, True),
        ({"LD_PRELOAD": "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"}, True),
        ({"LD_PRELOAD": " "}, False),
    ],
)
def test_an_environment_that_chooses_malloc_is_left_alone(environment, tuned):
    assert malloc_tuned_by_environment(environment) is tuned
