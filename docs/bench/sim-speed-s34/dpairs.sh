#!/bin/bash
# usage: dpairs.sh N WINDOW TREE... ; alternating one-process driver runs, measured run's process_time
N=$1; W=$2; shift 2
for i in $(seq 1 $N); do
  for T in "$@"; do
    l0=$(cut -d' ' -f1 /proc/loadavg)
    out=$(cd $T && PYTHONPATH=$T nice -n 10 /work/main/.venv/bin/python /tmp/B/drive.py $W)
    l1=$(cut -d' ' -f1 /proc/loadavg)
    echo "$(date -u +%H:%M:%S) $i $(basename $T) load $l0-$l1 $out"
  done
done
