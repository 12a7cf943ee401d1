#!/usr/bin/env bash
# Per broker process, summed over its threads (/proc/<pid>/task/*/schedstat): time on a CPU
# and time runnable but waiting for one, over a 4→4 client-individual run of 50,000
# messages, one run per shape and broker.
set -u
cd /work/wt-benchshape
export PYTHONPATH=/work/wt-benchshape
Z=$(cat /tmp/bs-z.pid); A=733; R=1695
O=bench/results/20261203-issue15-baseline/schedstat
mkdir -p $O
sched() { cat /proc/$1/task/*/schedstat 2>/dev/null | awk '{c+=$1; q+=$2} END {printf "%.0f %.0f\n", c, q}'; }
for shape in batched client; do
  for t in "zonemq 64613 $Z" "activemq 61623 $A" "rabbitmq 61633 $R"; do
    set -- $t
    s0=$(sched $3); w0=$(date +%s%N)
    python3 -m bench queue --target "stomp://127.0.0.1:$2?pid=$3&name=$1" -p 4 -c 4 --ack client-individual \
        -n 50000 --runs 1 --shape $shape --no-plots --out $O/runs > $O/run-$shape-$1.txt 2>&1
    s1=$(sched $3); w1=$(date +%s%N); l=$(cut -d' ' -f1 /proc/loadavg)
    python3 - "$shape" "$1" "$s0" "$s1" "$w0" "$w1" "$l" <<'PY' | tee -a $O/schedstat.txt
import sys
shape, name, s0, s1, w0, w1, load = sys.argv[1:]
c0, q0 = map(int, s0.split()); c1, q1 = map(int, s1.split())
wall = (int(w1) - int(w0)) / 1e9
print(f"{shape:8} {name:9} wall {wall:5.1f} s (incl. client start-up), all threads: on CPU {(c1-c0)/1e9:5.2f} s, "
      f"runnable waiting for a CPU {(q1-q0)/1e9:5.2f} s; load average {load}")
PY
  done
done
echo SYSDONE
