"""OpenWire tests drive the real ActiveMQ 5.17 JMS client (Debian's libactivemq-java) from
small Java programs compiled once per test session (tests/openwire/java/)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import BrokerThread

JAVA_DIR = Path(__file__).parent / "java"
# The client jar and what it needs at run time, as Debian installs them.
JARS = [
    "activemq-client.jar",
    "geronimo-jms_1.1_spec.jar",
    "geronimo-j2ee-management-1.1-spec.jar",
    "hawtbuf.jar",
    "slf4j-api.jar",
]
JAR_DIR = Path("/usr/share/java")


def classpath(extra: Path) -> str:
    return ":".join([str(JAR_DIR / j) for j in JARS] + [str(extra)])


@pytest.fixture(scope="session")
def java_classes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    missing = [j for j in JARS if not (JAR_DIR / j).exists()]
    if shutil.which("javac") is None or missing:
        pytest.skip(
            "needs javac (default-jdk-headless) and the ActiveMQ client jars "
            f"(libactivemq-java): missing {missing or 'javac'}"
        )
    out = tmp_path_factory.mktemp("java")
    sources = sorted(str(p) for p in JAVA_DIR.glob("*.java"))
    subprocess.run(
        ["javac", "-nowarn", "-d", str(out), "-cp", classpath(out), *sources],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return out


class Jms:
    """Runs one scenario of Scenarios.java against a broker URL; its key=value lines."""

    def __init__(self, classes: Path) -> None:
        self.classes = classes

    def run(
        self,
        url: str,
        scenario: str,
        *args: str,
        env: dict[str, str] | None = None,
        check: bool = True,
        program: str = "Scenarios",
    ) -> list[tuple[str, str]]:
        proc = subprocess.run(
            [
                "java",
                "-Dfile.encoding=UTF-8",
                "-Dsun.stdout.encoding=UTF-8",
                "-cp",
                classpath(self.classes),
                program,
                url,
                scenario,
                *args,
            ],
            capture_output=True,
            timeout=60,
            env={"PATH": "/usr/bin:/bin", **(env or {})},
        )
        out = proc.stdout.decode("utf-8", "surrogateescape")
        if check:
            assert proc.returncode == 0, out + proc.stderr.decode(errors="replace")
        return [
            tuple(line.split("=", 1))  # type: ignore[misc]
            for line in out.splitlines()
            if "=" in line
        ]


@pytest.fixture(scope="session")
def jms(java_classes: Path) -> Jms:
    return Jms(java_classes)


@pytest.fixture
def ow_broker(broker_factory: Callable[..., BrokerThread]) -> Iterator[BrokerThread]:
    yield broker_factory(**{"listeners.openwire.enabled": True, "listeners.openwire.port": 0})


def url(b: BrokerThread, options: str = "") -> str:
    return f"tcp://127.0.0.1:{b.broker.port('openwire')}{options}"
