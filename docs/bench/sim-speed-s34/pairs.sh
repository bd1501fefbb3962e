#!/bin/bash
# usage: pairs.sh LABEL TREE_A TREE_B N WINDOW ; alternating A B, CLI, prints load, digest, speeds
LABEL=$1; A=$2; B=$3; N=$4; W=${5:-100}
for i in $(seq 1 $N); do
  for T in $A $B; do
    name=$(basename $T)
    l0=$(cut -d' ' -f1 /proc/loadavg)
    (cd $T && PYTHONPATH=$T nice -n 10 /work/main/.venv/bin/python -m ostinato.cli bench sim --workload mixed --engines 8 --policies default --rates 24 --window-s $W --jobs 1 --warmup 300 --quiet --out /tmp/B/out_${LABEL}_${name}_$i > /dev/null 2>&1)
    l1=$(cut -d' ' -f1 /proc/loadavg)
    echo "$(date -u +%H:%M:%S) pair $i $name load $l0-$l1 $(/work/main/.venv/bin/python /tmp/B/rdigest.py /tmp/B/out_${LABEL}_${name}_$i/results.json)"
  done
done
