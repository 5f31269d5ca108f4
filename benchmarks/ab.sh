#!/usr/bin/env bash
# A/B in one sitting (rounds 8 and 9, docs/benchmarks.md): two checkouts measured
# alternately, one benchmarks/run.py round and one startup.py series each time, so that
# both see the same spells of a shared machine. Set them up first, e.g.
#   mkdir /tmp/old-client && git archive 75f6276 | tar -x -C /tmp/old-client
#   mkdir /tmp/final-client && git archive HEAD | tar -x -C /tmp/final-client
# (run.py makes each checkout's benchmark virtualenv on first use). Results in $OUT.
# For the producer alone, benchmarks/produce.py is quicker (it needs no virtualenvs).
#   benchmarks/ab.sh [A_DIR [B_DIR [ROUNDS]]]   (default /tmp/old-client /tmp/final-client 3)
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$here/.venv/bin/python}
out=${OUT:-/tmp/ab}
a=${1:-/tmp/old-client} b=${2:-/tmp/final-client} rounds=${3:-3}
mkdir -p "$out"
for i in $(seq "$rounds"); do
  for side in a b; do
    dir=${!side}
    echo "== $side ($dir) round $i $(date +%T) load $(cut -d' ' -f1-3 /proc/loadavg)" >> "$out/log.txt"
    (cd "$dir" && "$python" benchmarks/run.py --libs fluxqueue-redis --repeat 1 --no-chart --out "$out/$side-$i" >> "$out/$side-$i.txt" 2>&1)
    "$python" "$here/benchmarks/startup.py" --python "$dir/benchmarks/.venv-peers/fluxqueue/bin/python" --rounds 3 >> "$out/startup-$side.jsonl" 2>>"$out/log.txt"
  done
done
echo "== done $(date +%T) load $(cut -d' ' -f1-3 /proc/loadavg)" >> "$out/log.txt"
