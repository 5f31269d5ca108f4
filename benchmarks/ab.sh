#!/usr/bin/env bash
# A/B in one sitting (round 8, docs/benchmarks.md): two checkouts measured alternately,
# one benchmarks/run.py round and one startup.py series each time, so that both see the
# same spells of a shared machine. Set them up first, e.g.
#   mkdir /tmp/old-client && git archive 75f6276 | tar -x -C /tmp/old-client
#   mkdir /tmp/final-client && git archive HEAD | tar -x -C /tmp/final-client
# (run.py makes each checkout's benchmark virtualenv on first use). Results in $OUT.
set -u
mkdir -p "${OUT:-/tmp/ab}"
for i in 1 2 3; do
  for side in old final; do
    dir=/tmp/$side-client
    echo "== $side round $i $(date +%T) load $(cut -d' ' -f1-3 /proc/loadavg)" >> ${OUT:-/tmp/ab}/log.txt
    (cd $dir && /work/wt/redis/.venv/bin/python benchmarks/run.py --libs fluxqueue-redis --repeat 1 --no-chart --out ${OUT:-/tmp/ab}/$side-$i >> ${OUT:-/tmp/ab}/$side-$i.txt 2>&1)
    /work/wt/redis/.venv/bin/python /work/wt/redis/benchmarks/startup.py --python $dir/benchmarks/.venv-peers/fluxqueue/bin/python --rounds 3 >> ${OUT:-/tmp/ab}/startup-$side.jsonl 2>>${OUT:-/tmp/ab}/log.txt
  done
done
echo "== done $(date +%T) load $(cut -d' ' -f1-3 /proc/loadavg)" >> ${OUT:-/tmp/ab}/log.txt
