#!/usr/bin/env bash
# Issue 15 baseline: every row, both shapes, ZoneMQ vs ActiveMQ vs RabbitMQ, interleaved.
set -u
cd /work/wt-benchshape
export PYTHONPATH=/work/wt-benchshape
Z=$(cat /tmp/bs-z.pid); A=733; R=1695
O=bench/results/20261203-issue15-baseline
T="--target stomp://127.0.0.1:64613?pid=$Z&name=zonemq --target stomp://127.0.0.1:61623?pid=$A&name=activemq --target stomp://127.0.0.1:61633?pid=$R&name=rabbitmq"
C="--shape batched,client --runs 3 --warmup-run --duration 90 --no-plots"
python3 -m bench queue $T -n 100000 $C --out $O/q1 --label "queue 1→1 non-persistent auto"
python3 -m bench queue $T -p 4 -c 4 -n 100000 $C --out $O/q4 --label "queue 4→4 non-persistent auto"
python3 -m bench queue $T -p 4 -c 4 --ack client-individual -n 100000 $C --out $O/ci --label "queue 4→4 client-individual"
python3 -m bench receipts $T -p 4 -c 4 -n 20000 $C --out $O/rc --label "receipts 4→4 persistent"
echo ALLDONE
