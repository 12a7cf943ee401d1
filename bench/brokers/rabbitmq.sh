#!/usr/bin/env bash
# Start a reference RabbitMQ 3.10 (Debian package `rabbitmq-server`) with its STOMP and
# AMQP 1.0 plugins, bound to loopback only: STOMP 127.0.0.1:61633, AMQP 0-9-1 and AMQP 1.0
# 127.0.0.1:5682 (one listener; the protocol header picks the protocol), Erlang distribution
# 127.0.0.1:25682, epmd 127.0.0.1:4379 (all shifted so a system RabbitMQ can coexist).
# Node bench@localhost, data and logs in /var/lib/rabbitmq/zonemq-bench.
#
# Idempotent: installs the package (without starting Debian's own service) if missing,
# starts the node unless its STOMP port already answers, prints the beam.smp pid.
#
#   pid=$(bench/brokers/rabbitmq.sh)
#   python -m bench receipts --target "stomp://127.0.0.1:61633?pid=$pid&name=rabbitmq"
#   python -m bench queue --target "amqp://127.0.0.1:5682?pid=$pid&name=rabbitmq"
#   bench/brokers/rabbitmq.sh stop
set -euo pipefail

stomp_port=${RABBITMQ_BENCH_PORT:-61633}
base=/var/lib/rabbitmq/zonemq-bench
export RABBITMQ_NODENAME=bench@localhost
export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT=5682 RABBITMQ_DIST_PORT=25682
export ERL_EPMD_ADDRESS=127.0.0.1 ERL_EPMD_PORT=4379
export RABBITMQ_CONFIG_FILE=$base/rabbitmq RABBITMQ_ENABLED_PLUGINS_FILE=$base/enabled_plugins
export RABBITMQ_MNESIA_BASE=$base/mnesia RABBITMQ_LOG_BASE=$base/log
export RABBITMQ_PID_FILE=$base/rabbitmq.pid
# Erlang distribution on loopback too (it binds 0.0.0.0 otherwise).
export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"

listener_pid() {
    ss -ltnpH "sport = :$stomp_port" 2>/dev/null | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2 || true
}

if [[ ${1:-start} == stop ]]; then
    if [[ -n $(listener_pid) ]]; then
        rabbitmqctl -n "$RABBITMQ_NODENAME" stop >&2 || kill -TERM "$(listener_pid)"
    fi
    epmd -kill >/dev/null 2>&1 || true   # our epmd on ERL_EPMD_PORT (4379)
    exit 0
fi

pid=$(listener_pid)
if [[ -n $pid ]]; then
    echo "$pid"
    exit 0
fi

if ! dpkg -s rabbitmq-server >/dev/null 2>&1; then
    # Keep Debian's own service from starting on 0.0.0.0 during the install.
    restore=""
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        restore=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y rabbitmq-server >&2
    [[ -n $restore ]] && rm -f /usr/sbin/policy-rc.d
fi

mkdir -p "$base/mnesia" "$base/log"
cat >"$base/rabbitmq.conf" <<X
listeners.tcp.default = 127.0.0.1:5682
stomp.listeners.tcp.1 = 127.0.0.1:$stomp_port
stomp.tcp_listen_options.nodelay = true
tcp_listen_options.nodelay = true
loopback_users.guest = true
log.file.level = warning
amqp1_0.default_user = guest
amqp1_0.default_vhost = /
X
# rabbitmq_amqp1_0: AMQP 1.0 on the AMQP listener; addresses /queue/NAME (declared on
# attach) and /amq/queue/NAME (must exist).
echo '[rabbitmq_stomp,rabbitmq_amqp1_0].' >"$base/enabled_plugins"
chown -R rabbitmq:rabbitmq "$base"
# 10,000 idle connections need as many file descriptors.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
nohup /usr/sbin/rabbitmq-server >"$base/log/console.out" 2>&1 &

for _ in $(seq 900); do
    pid=$(listener_pid)
    if [[ -n $pid ]]; then
        echo "$pid"
        exit 0
    fi
    sleep 0.1
done
echo "RabbitMQ did not open 127.0.0.1:$stomp_port; see $base/log/" >&2
exit 1
