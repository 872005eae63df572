#!/usr/bin/env bash
# Install the peer frameworks for benchmarks/peers/run.py, each in an environment its pins allow:
#   .peers/main        torch_geometric (PyG SchNet), nequip, chemprop
#   .peers/schnetpack  schnetpack 2.0.x (PaiNN): it pins torchmetrics 1.0.1, nequip needs >= 1.6;
#                      schnetpack 2.1 pins sympy <= 1.12, which torch 2.13 refuses
#   .peers/mace        mace-torch, which pins e3nn 0.4.4 (atomgraph needs e3nn >= 0.5)
# atomgraph itself runs from the project's .venv (scripts/setup.sh). The harness runs each framework in
# its own worker process, so no environment needs another's packages.
# Idempotent: an environment whose stamp file exists is left alone.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
TORCH=${TORCH_VERSION:-2.13.0}
quiet() { "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }
make_env() {  # name, packages...
    local env=.peers/$1
    shift
    [ -f "$env/.installed" ] && return 0
    "$PY" -m venv "$env"
    quiet "$env/bin/pip" install -q --upgrade pip
    # torch first and pinned: a bare "torch" requirement would pull a CUDA build
    quiet "$env/bin/pip" install -q "torch==$TORCH"
    quiet "$env/bin/pip" install -q "torch==$TORCH" "$@"
    touch "$env/.installed"
}
make_env main "torch_geometric==2.8.1" "nequip==0.19.1" "chemprop==2.3.1" ase
make_env schnetpack "schnetpack==2.0.4" ase
make_env mace "mace-torch==0.3.16" ase
echo "peer environments ready: .peers/main .peers/schnetpack .peers/mace"
