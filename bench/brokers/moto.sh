#!/usr/bin/env bash
# Start a reference moto_server (PyPI `moto[server]`, AWS service mocks over HTTP) for the
# SQS scenarios, bound to 127.0.0.1:5000. moto accepts any Authorization (it does not
# verify SigV4). Idempotent: installs moto[server] if `moto_server` is missing, starts it
# unless its pidfile names a live process, prints its pid on stdout.
#
#   pid=$(bench/brokers/moto.sh)
#   python -m bench sqs-batch --target "sqs://127.0.0.1:5000?pid=$pid&name=moto"
#   bench/brokers/moto.sh stop
#
# Environment: MOTO_BENCH_PORT (5000), MOTO_BENCH_DIR (/tmp/moto-bench: pidfile, log).
set -euo pipefail

port=${MOTO_BENCH_PORT:-5000}
dir=${MOTO_BENCH_DIR:-/tmp/moto-bench}
pidfile=$dir/moto.pid

running() { [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

if [[ ${1:-start} == stop ]]; then
    if running; then
        pid=$(cat "$pidfile")
        kill -TERM "$pid"
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        echo "stopped $pid" >&2
    fi
    rm -f "$pidfile"
    exit 0
fi

mkdir -p "$dir"
if running; then
    cat "$pidfile"
    exit 0
fi
if ! command -v moto_server >/dev/null 2>&1; then
    pip install 'moto[server]' >&2
fi
nohup moto_server -p "$port" -H 127.0.0.1 >"$dir/moto.log" 2>&1 &
echo $! >"$pidfile"
for _ in $(seq 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        cat "$pidfile"
        exit 0
    fi
    sleep 0.1
done
echo "moto_server did not open 127.0.0.1:$port; see $dir/moto.log" >&2
exit 1
