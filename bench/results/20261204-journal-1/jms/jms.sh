#!/bin/bash
CP=/usr/share/java/activemq-client.jar:/usr/share/java/geronimo-jms_1.1_spec.jar:/usr/share/java/geronimo-j2ee-management-1.1-spec.jar:/usr/share/java/hawtbuf.jar:/usr/share/java/slf4j-api.jar:/tmp/jr/jmsbench
cpu() { awk '{print $14+$15}' /proc/$1/stat; }
N=${N:-3000}
declare -A PORT=([zonemq]=64716 [zonemq-base]=64717 [activemq]=61626)
declare -A PID=([zonemq]=$1 [zonemq-base]=$2 [activemq]=$3)
uptime
for t in zonemq zonemq-base activemq; do java -cp $CP JmsBench tcp://127.0.0.1:${PORT[$t]} jr.jms.warm.$t.$RANDOM 1 1 1000 256 persistent >/dev/null 2>&1; done
for r in 1 2 3 4 5; do
  for t in zonemq zonemq-base activemq; do
    c0=$(cpu ${PID[$t]})
    out=$(java -cp $CP JmsBench tcp://127.0.0.1:${PORT[$t]} jr.jms.$t.r$r.$RANDOM 1 1 $N 256 persistent 2>/dev/null | tail -1)
    c1=$(cpu ${PID[$t]})
    echo "run $r $t $out cpu_us_per_msg=$(( (c1-c0)*10000/N ))"
  done
done
uptime
