#!/usr/bin/env bash
# py-spy of ZoneMQ's main thread under 4→4 client-individual, client shape then batched.
set -u
cd /work/wt-benchshape
export PYTHONPATH=/work/wt-benchshape
Z=$(cat /tmp/bs-z.pid)
O=bench/results/20261203-issue15-baseline/profile
mkdir -p $O
for shape in client batched; do
  n=600000; [[ $shape == batched ]] && n=900000
  python3 -m bench queue --target "stomp://127.0.0.1:64613?pid=$Z&name=zonemq" -p 4 -c 4 \
      --ack client-individual -n $n --runs 1 --shape $shape --duration 90 --no-plots \
      --out $O/run-$shape > $O/run-$shape.txt 2>&1 &
  B=$!
  sleep 4   # past connection set-up; the run itself lasts ~15-25 s
  py-spy record --pid $Z --duration 12 --rate 250 -f raw -o $O/pyspy-$shape.raw.txt > $O/pyspy-$shape.log 2>&1
  wait $B
  python3 -m bench.pyspy_summary $O/pyspy-$shape.raw.txt 30 > $O/pyspy-$shape.summary.txt
done
echo PROFDONE
