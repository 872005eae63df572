#!/usr/bin/env bash
# Data-parallel training with torchrun: one process per GPU on each node (Lightning DDP reads the
# torchrun environment). The first rank to reach the data builds the on-disk store under a lock
# file; where the nodes' shared filesystem has no flock, build it first from one process:
#   atomgraph train CONFIG data.storage=lmdb training.max_steps=1 run_dir=/tmp/store_build
#
#   one node, 4 GPUs:   NPROC=4 bash examples/launch/torchrun.sh configs/qm9_schnet_paper.yaml
#   two nodes:          NNODES=2 NODE_RANK=0 MASTER=host0:29500 NPROC=4 bash examples/launch/torchrun.sh CONFIG
#                       NNODES=2 NODE_RANK=1 MASTER=host0:29500 NPROC=4 bash examples/launch/torchrun.sh CONFIG
#   CPU check (gloo):   NPROC=2 ACCELERATOR=cpu bash examples/launch/torchrun.sh CONFIG
set -euo pipefail
config=${1:?usage: torchrun.sh CONFIG [key=value ...]}
shift
nproc=${NPROC:-1}
nnodes=${NNODES:-1}
accelerator=${ACCELERATOR:-gpu}
if [ "$nnodes" -eq 1 ]; then
    rendezvous=(--standalone)
else
    rendezvous=(--rdzv-backend=c10d --rdzv-endpoint="${MASTER:?set MASTER=host:port}" --node-rank="${NODE_RANK:?}")
fi
exec torchrun "${rendezvous[@]}" --nnodes "$nnodes" --nproc-per-node "$nproc" -m atomgraph.cli.main train "$config" \
    training.accelerator="$accelerator" training.devices="$nproc" training.num_nodes="$nnodes" \
    training.strategy=ddp data.storage=lmdb "$@"
