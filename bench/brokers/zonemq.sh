#!/usr/bin/env bash
# Start ZoneMQ for benchmarking: STOMP 127.0.0.1:61613, AMQP 1.0 127.0.0.1:5672, SQS
# (AWS JSON 1.0 / Query over HTTP) 127.0.0.1:9324, console 8171, data in
# /tmp/zonemq-bench. Idempotent: if one is already running from this script, prints its
# pid and exits. Prints the broker's pid on stdout; the log is /tmp/zonemq-bench/broker.log.
#
#   pid=$(bench/brokers/zonemq.sh)
#   python -m bench queue --target "stomp://127.0.0.1:61613?pid=$pid&name=zonemq"
#   bench/brokers/zonemq.sh stop            # or: kill -TERM "$pid" (graceful drain)
#
# Environment: ZONEMQ_BENCH_PORT (61613), ZONEMQ_BENCH_AMQP (5672), ZONEMQ_BENCH_SQS
# (9324), ZONEMQ_BENCH_CONSOLE (8171), ZONEMQ_BENCH_OPENWIRE (61616; 0 = ephemeral, for a
# second instance beside the first),
# ZONEMQ_BENCH_DIR (/tmp/zonemq-bench), PYTHON (python3), and any ZONEMQ_* setting,
# e.g. ZONEMQ_LISTENERS__STOMP__MAX_CONNECTIONS=20000 for the idle scenario.
set -euo pipefail

port=${ZONEMQ_BENCH_PORT:-61613}
console=${ZONEMQ_BENCH_CONSOLE:-8171}
amqp=${ZONEMQ_BENCH_AMQP:-5672}
sqs=${ZONEMQ_BENCH_SQS:-9324}
openwire=${ZONEMQ_BENCH_OPENWIRE:-61616}
dir=${ZONEMQ_BENCH_DIR:-/tmp/zonemq-bench}
py=${PYTHON:-python3}
root=$(cd "$(dirname "$0")/../.." && pwd)
pidfile=$dir/broker.pid

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
# 10,000 idle connections need as many file descriptors.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
cd "$root"
nohup env -u ZONEMQ_BENCH_PORT -u ZONEMQ_BENCH_CONSOLE -u ZONEMQ_BENCH_DIR \
    -u ZONEMQ_BENCH_AMQP -u ZONEMQ_BENCH_SQS -u ZONEMQ_BENCH_OPENWIRE \
    ZONEMQ_LISTENERS__OPENWIRE__PORT="$openwire" \
    "$py" -m broker run --bind 127.0.0.1 --stomp-port "$port" --amqp-port "$amqp" \
    --sqs-port "$sqs" --console-port "$console" --data-dir "$dir" --log-level warning >"$dir/broker.log" 2>&1 &
echo $! >"$pidfile"
for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null &&
        { [[ $amqp == 0 ]] || (exec 3<>"/dev/tcp/127.0.0.1/$amqp") 2>/dev/null; } &&
        { [[ $sqs == 0 ]] || (exec 3<>"/dev/tcp/127.0.0.1/$sqs") 2>/dev/null; }; then
        cat "$pidfile"
        exit 0
    fi
    sleep 0.1
done
echo "ZoneMQ did not open 127.0.0.1:$port; see $dir/broker.log" >&2
exit 1
