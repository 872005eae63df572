#!/usr/bin/env bash
# The GPU checks in one short call on a lent GPU machine (README "On a GPU"):
#   1. the CUDA cases of the device tests (tests/test_device.py: every model, forces, stress and their
#      training gradients, a training run, the calculator and MD, a committee, batched prediction);
#   2. the peer harness (benchmarks/peers/run.py) on cuda, one thread for the Python side.
#
#   bash benchmarks/gpu_check.sh prepare   # here, with internet: wheels + systems into .device/ (ignored)
#   bash benchmarks/gpu_check.sh run       # there, in the repository root, carrying .device; results in $OUT
#   bash benchmarks/gpu_check.sh compile   # there: infer and MD with atomgraph's forward compiled too
#
# The GPU machine has Python 3.12 with torch, PyG, e3nn and Lightning but no internet: `prepare` fetches
# the other packages as cp312 wheels (atomgraph's and the peers' in .device/wheels, mace-torch with the
# e3nn 0.4.4 it pins in .device/wheels_mace, installed into a folder of its own) and writes the harness's
# systems as extended XYZ (the datasets stay here).
set -uo pipefail
cd "$(dirname "$0")/.."
DEV=.device

prepare() {
    set -e
    mkdir -p "$DEV/wheels" "$DEV/wheels_mace" "$DEV/systems"
    grep -qx "/$DEV/" .git/info/exclude 2>/dev/null || echo "/$DEV/" >>.git/info/exclude
    local platforms="--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64"
    fetch() {  # folder, requirements...
        local folder=$1
        shift
        for spec in "$@"; do
            python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
                $platforms -d "$folder" "$spec" 2>/dev/null ||
                .venv/bin/pip wheel -q --no-deps -w "$folder" "$spec" # pure-Python sdists
        done
    }
    version() { .venv/bin/python -c "import importlib.metadata as m; print(m.version('$1'))"; }
    fetch "$DEV/wheels" "ase==$(version ase)" "gemmi==$(version gemmi)" "lmdb==$(version lmdb)" \
        "rdkit==$(version rdkit)" "vesin==$(version vesin)" \
        nequip==0.19.1 hydra-core==1.3.8 omegaconf==2.3.1 antlr4-python3-runtime==4.9.3 matscipy==1.3.1 \
        schnetpack==2.0.4 torch-ema==0.3 dirsync==2.2.6 fasteners==0.20 hydra-colorlog==1.2.0 colorlog==6.12.0
    fetch "$DEV/wheels_mace" mace-torch==0.3.16 e3nn==0.4.4 configargparse==1.9.0 gitpython==3.2.1 \
        gitdb==4.0.12 smmap==5.0.3 orjson==3.13.0 prettytable==3.18.0 python_hostlist==2.3.0 wcwidth==0.9.4
    .venv/bin/python -c "
import sys; sys.path.insert(0, 'benchmarks/peers')
from pathlib import Path
from run import write_systems
write_systems(Path('$DEV/systems'))"
    du -sh "$DEV"/*
}

OUT=${OUT:-/tmp/gpu_check}

install() {
    mkdir -p "$OUT"
    export PYTHONUNBUFFERED=1
    local install="python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade"
    $install --target /tmp/site "$DEV"/wheels/*.whl || exit 1
    $install --target /tmp/site_mace "$DEV"/wheels_mace/*.whl || exit 1
    export PYTHONPATH=$PWD/src:/tmp/site
    mkdir -p /tmp/py # each framework's interpreter: the same python3, mace-torch with its own e3nn first
    printf '#!/bin/sh\nexec python3 "$@"\n' >/tmp/py/python
    printf '#!/bin/sh\nPYTHONPATH=/tmp/site_mace:$PYTHONPATH exec python3 "$@"\n' >/tmp/py/mace
    chmod +x /tmp/py/python /tmp/py/mace
}

peers() { # output name, run.py arguments...
    local name=$1 py=/tmp/py/python
    shift
    timeout "${PEER_TIMEOUT:-300}" python3 benchmarks/peers/run.py --device cuda --threads 1 \
        --rounds 4 --calls 3 --warmup 5 --md-steps 10 --systems "$DEV/systems" \
        --python atomgraph=$py --python atomgraph_compiled=$py --python pyg=$py --python nequip=$py \
        --python schnetpack=$py --python mace=/tmp/py/mace --out "$OUT/$name.json" "$@" 2>"$OUT/$name.err"
    echo "peer harness exit $?"
    tail -5 "$OUT/$name.err"
}

run() {
    install
    local out=$OUT
    {
        nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv
        python3 -c "import torch, e3nn, torch_geometric, lightning, platform
print('python', platform.python_version(), 'torch', torch.__version__, 'cuda', torch.version.cuda,
      torch.cuda.get_device_name(), 'e3nn', e3nn.__version__, 'pyg', torch_geometric.__version__,
      'lightning', lightning.__version__, 'cpus', __import__('os').cpu_count())"
    } 2>&1 | tee "$out/machine.txt"

    echo "== device tests (CPU and CUDA cases)"
    timeout "${TEST_TIMEOUT:-150}" python3 -m pytest -q -p no:cacheprovider -n 8 -rs tests/test_device.py \
        2>&1 | tee "$out/device_tests.log" | tail -30
    local tests=${PIPESTATUS[0]}

    echo "== peers on cuda"
    peers peers_gpu --only nequip mace painn schnet --sections train:aspirin32 infer:water1536 md:water192
    return "$tests" # the tests decide the exit status (the peer timings come back either way)
}

compiled() { # the forward through torch.compile beside eager atomgraph and the peer (infer and MD only)
    install
    echo "== peers on cuda, atomgraph compiled too"
    peers peers_gpu_compile --compile --only painn schnet nequip --sections infer:water1536 md:water192
}

case "${1:-}" in
prepare) prepare ;;
run) run ;;
compile) compiled ;;
*) echo "usage: $0 prepare|run|compile" >&2 && exit 2 ;;
esac
