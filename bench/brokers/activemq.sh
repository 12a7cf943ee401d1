#!/usr/bin/env bash
# Start a reference ActiveMQ 5.17 (Debian package `activemq`) for benchmarking, as its own
# instance "zonemq-bench": STOMP on 127.0.0.1:61623 with transport.tcpNoDelay=true (the
# broker-side spelling of tcpNoDelay: server-side TCP options take the "transport."
# prefix), OpenWire on 127.0.0.1:61626, data in /var/lib/activemq/zonemq-bench. The
# instance is not put in instances-enabled, so `/etc/init.d/activemq` never touches it
# and it does not clash with a "main" instance on 61613/61616.
#
# Idempotent: installs the package if missing, writes the instance config, starts the
# broker unless it already runs, and prints the java pid on stdout.
#
#   pid=$(bench/brokers/activemq.sh)
#   python -m bench queue --target "stomp://127.0.0.1:61623?pid=$pid&name=activemq"
#   bench/brokers/activemq.sh stop
set -euo pipefail

name=zonemq-bench
stomp_port=${ACTIVEMQ_BENCH_PORT:-61623}
openwire_port=${ACTIVEMQ_BENCH_OPENWIRE:-61626}
conf=/etc/activemq/instances-available/$name
base=/var/lib/activemq/$name
pidfile=/var/run/activemq/$name.pid

running() { [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

if [[ ${1:-start} == stop ]]; then
    if running; then
        pid=$(cat "$pidfile")
        kill -TERM "$pid"
        for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        echo "stopped $pid" >&2
    fi
    rm -f "$pidfile"
    exit 0
fi

if running; then
    cat "$pidfile"
    exit 0
fi

if ! dpkg -s activemq >/dev/null 2>&1; then
    apt-get install -y activemq >&2
fi

# The instance: Debian's shipped activemq.xml with our two loopback connectors.
template=/etc/activemq/instances-available/main/activemq.xml
[[ -f /root/activemq.xml.orig ]] && template=/root/activemq.xml.orig
mkdir -p "$conf" "$base/data" "$base/tmp" /var/run/activemq
python3 - "$template" "$conf/activemq.xml" "$stomp_port" "$openwire_port" <<'PY'
import re, sys
src, dst, stomp, openwire = sys.argv[1:]
xml = open(src).read()
connectors = (
    "<transportConnectors>\n"
    f'            <transportConnector name="openwire" uri="tcp://127.0.0.1:{openwire}"/>\n'
    f'            <transportConnector name="stomp" '
    f'uri="stomp://127.0.0.1:{stomp}?transport.tcpNoDelay=true"/>\n'
    "        </transportConnectors>"
)
xml, n = re.subn(r"<transportConnectors>.*?</transportConnectors>", connectors, xml, flags=re.S)
assert n == 1, "no <transportConnectors> in " + src
open(dst, "w").write(xml)
PY
cat >"$conf/log4j.properties" <<'X'
log4j.rootLogger=WARN, stdout
log4j.logger.org.apache.activemq.broker.BrokerService=INFO
log4j.logger.org.apache.activemq.broker.TransportConnector=INFO
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=%d{HH:mm:ss,SSS} %-5p %c{1} - %m%n
X
chown -R activemq "$base" /var/run/activemq

# The same environment /etc/init.d/activemq gives an instance.
export INSTANCE=$name ACTIVEMQ_USER=activemq ACTIVEMQ_PIDFILE=$pidfile
export ACTIVEMQ_HOME=/usr/share/activemq ACTIVEMQ_CONFIG_DIR=$conf
# shellcheck disable=SC1091
. /usr/share/activemq/activemq-options
ACTIVEMQ_BASE=$base
ACTIVEMQ_OUT=$base/data/console.out
export ACTIVEMQ_BASE ACTIVEMQ_OUT ACTIVEMQ_OPTS JAVA_HOME
# 10,000 idle connections need as many file descriptors.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
start-stop-daemon --start --quiet --pidfile "$pidfile" --chuid activemq --background \
    --name java --startas /usr/bin/activemq -- start xbean:activemq.xml

for _ in $(seq 600); do
    if [[ -f $pidfile ]] && (exec 3<>"/dev/tcp/127.0.0.1/$stomp_port") 2>/dev/null; then
        cat "$pidfile"
        exit 0
    fi
    sleep 0.1
done
echo "ActiveMQ did not open 127.0.0.1:$stomp_port; see $base/data/console.out" >&2
exit 1
