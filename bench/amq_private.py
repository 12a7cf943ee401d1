"""A private ActiveMQ 5.17 (Debian's package) with a configuration of our own, for the
policy comparisons that the shared instance of activemq.sh (its default configuration)
cannot show: a policyEntry, schedulerSupport, a pending-message limit.

    with private_activemq(policy_xml, broker_attrs='schedulerSupport="true"') as amq:
        amq.stomp  # ("127.0.0.1", port)

Each instance has its own directory under /tmp (config, KahaDB, scheduler store, log),
ephemeral-looking ports picked free at start, and is stopped by the pid of the java
process this module started (never by name: other brokers run on the machine).

Debian's package lacks XStream and Jettison in ActiveMQ's lib/optional, which the
upstream tarball (and so Amazon MQ) ships; without them ActiveMQ's STOMP transport cannot
build an advisory frame (its default `jms-advisory-json` transformation) and delivers
none. The instance links Debian's /usr/share/java jars of both into its own lib/ so its
STOMP advisories are the upstream broker's.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

HOME = Path("/usr/share/activemq")
JAVA = Path("/usr/lib/jvm/default-java/bin/java")
EXTRA_JARS = ("xstream.jar", "jettison.jar", "xpp3.jar")

_XML = """<beans xmlns="http://www.springframework.org/schema/beans"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xsi:schemaLocation="http://www.springframework.org/schema/beans
  http://www.springframework.org/schema/beans/spring-beans-2.0.xsd
  http://activemq.apache.org/schema/core
  http://activemq.apache.org/schema/core/activemq-core.xsd">
  <broker xmlns="http://activemq.apache.org/schema/core" useJmx="false"
          brokerName="localhost" dataDirectory="{base}/data" {attrs}>
    <destinationPolicy><policyMap><policyEntries>
      {policy}
    </policyEntries></policyMap></destinationPolicy>
    <persistenceAdapter><kahaDB directory="{base}/data/kahadb"/></persistenceAdapter>
    <transportConnectors>
      <transportConnector name="openwire" uri="tcp://127.0.0.1:{openwire}"/>
      <transportConnector name="stomp" uri="stomp://127.0.0.1:{stomp}"/>
    </transportConnectors>
  </broker>
</beans>
"""


@dataclass
class PrivateActiveMQ:
    """A running private instance: its STOMP and OpenWire addresses and java pid."""

    stomp: tuple[str, int]
    openwire: tuple[str, int]
    pid: int
    base: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
        return True
    return False


@contextlib.contextmanager
def private_activemq(
    policy: str = '<policyEntry queue=">"/>', broker_attrs: str = "", timeout: float = 90.0
) -> Iterator[PrivateActiveMQ]:
    """Start an instance whose policyEntries are `policy` and whose <broker> element has
    `broker_attrs` too; stop it (by its pid) on leaving."""
    base = Path(tempfile.mkdtemp(prefix="amq-private-"))
    conf = base / "conf"
    lib = base / "lib"
    for d in (conf, lib, base / "data", base / "tmp"):
        d.mkdir()
    for jar in EXTRA_JARS:
        src = Path("/usr/share/java") / jar
        if src.exists():
            (lib / jar).symlink_to(src)
    stomp, openwire = _free_port(), _free_port()
    (conf / "activemq.xml").write_text(
        _XML.format(base=base, attrs=broker_attrs, policy=policy, stomp=stomp, openwire=openwire)
    )
    (conf / "log4j.properties").write_text(
        "log4j.rootLogger=WARN, out\n"
        "log4j.appender.out=org.apache.log4j.FileAppender\n"
        f"log4j.appender.out.file={base}/activemq.log\n"
        "log4j.appender.out.layout=org.apache.log4j.PatternLayout\n"
        "log4j.appender.out.layout.ConversionPattern=%d{HH:mm:ss,SSS} %-5p %c{1} - %m%n\n"
    )
    args = [
        str(JAVA),
        "-Xms128M",
        "-Xmx256M",
        f"-Djava.io.tmpdir={base}/tmp",
        "--add-opens",
        "java.base/java.lang=ALL-UNNAMED",
        "--add-opens",
        "java.base/java.util=ALL-UNNAMED",
        "--add-opens",
        "java.base/java.util.concurrent=ALL-UNNAMED",
        f"-Dactivemq.classpath={conf}",
        f"-Dactivemq.home={HOME}",
        f"-Dactivemq.base={base}",
        f"-Dactivemq.conf={conf}",
        f"-Dactivemq.data={base}/data",
        "-jar",
        str(HOME / "bin" / "activemq.jar"),
        "start",
        f"xbean:file:{conf}/activemq.xml",
    ]
    with open(base / "console.out", "wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=base)
    try:
        deadline = time.monotonic() + timeout
        while not _listening(stomp):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"private ActiveMQ did not start; see {base}/console.out")
            time.sleep(0.2)
        yield PrivateActiveMQ(("127.0.0.1", stomp), ("127.0.0.1", openwire), proc.pid, base)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        if not os.environ.get("AMQ_PRIVATE_KEEP"):
            shutil.rmtree(base, ignore_errors=True)
