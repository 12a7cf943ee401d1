"""OpenWire A/B with the real JMS client: `python -m bench.openwire.compare`.

Starts one private ZoneMQ per `--code name=DIR` checkout (OpenWire on an ephemeral
port, its own data directory, `store.fsync = "always"` unless `--fsync` says
otherwise), optionally adds an already running ActiveMQ (`--activemq PORT:PID`, e.g.
the shared 61626 instance), and runs bench/openwire/JmsBench.java against each target
in turn, round after round (A B C A B C ...), so that the machine's load falls on all
of them alike. Each line is one JMS run: target, scenario, msg/s, the broker's CPU
(utime + stime from /proc) per message and as a share of the run's wall time, and the
client JVM's CPU seconds. A summary per target and scenario (medians) and the load
average come last. The ZoneMQ brokers it started are stopped by their pids.
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.procstat import proc_cpu_seconds

ROOT = Path(__file__).resolve().parents[2]
JARS = [
    "/usr/share/java/activemq-client.jar",
    "/usr/share/java/geronimo-jms_1.1_spec.jar",
    "/usr/share/java/geronimo-j2ee-management-1.1-spec.jar",
    "/usr/share/java/hawtbuf.jar",
    "/usr/share/java/slf4j-api.jar",
]
SCENARIOS = {
    "np1": (1, 1, "non"),
    "np4": (4, 4, "non"),
    "p1": (1, 1, "persistent"),
    "p4": (4, 4, "persistent"),
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"no broker on port {port}")


def start_zonemq(code: str, workdir: str, fsync: str) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    env = dict(os.environ)
    env.update(
        PYTHONPATH=code,
        ZONEMQ_LISTENERS__OPENWIRE__ENABLED="true",
        ZONEMQ_LISTENERS__OPENWIRE__PORT=str(port),
    )
    cmd = [sys.executable, "-m", "broker", "run", "--bind", "127.0.0.1", "--stomp-port", "0"]
    cmd += ["--amqp-port", "0", "--sqs-port", "0", "--console-port", "0"]
    cmd += ["--data-dir", workdir, "--log-level", "warning", "--fsync", fsync]
    log = open(os.path.join(workdir, "broker.log"), "wb")  # noqa: SIM115 - the child's
    proc = subprocess.Popen(cmd, cwd=code, env=env, stdout=log, stderr=subprocess.STDOUT)
    _wait_port(port)
    return proc, port


def compile_bench(out: str) -> str:
    cp = ":".join(JARS)
    src = ROOT / "bench" / "openwire" / "JmsBench.java"
    subprocess.run(["javac", "-cp", cp, "-d", out, str(src)], check=True)
    return f"{cp}:{out}"


def run_one(cp: str, port: int, pid: int, scenario: str, n: int, size: int, queue: str) -> dict:
    producers, consumers, mode = SCENARIOS[scenario]
    cpu0 = proc_cpu_seconds(pid) or 0.0
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    argv = [str(producers), str(consumers), str(n), str(size), mode]
    res = subprocess.run(
        ["java", "-cp", cp, "JmsBench", f"tcp://127.0.0.1:{port}", queue, *argv],
        capture_output=True,
        text=True,
        timeout=600,
    )
    wall = time.monotonic() - t0
    cpu = (proc_cpu_seconds(pid) or 0.0) - cpu0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    client = ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime
    fields = dict(kv.split("=", 1) for kv in res.stdout.split() if "=" in kv)
    return {
        "rate": int(fields.get("rate", 0)),
        "complete": fields.get("complete") == "true",
        "cpu_us": 1e6 * cpu / n,
        # The JVM's whole run (start-up included): whether the client was the limit.
        "client_cpu_s": client,
        "broker_cpu_pct": 100 * cpu / wall,
        "wall": wall,
        "stderr": res.stderr.strip()[-300:],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--code", action="append", default=[], help="name=DIR of a checkout")
    ap.add_argument("--activemq", help="PORT:PID of a running ActiveMQ's OpenWire")
    ap.add_argument("--scenarios", default="np1,np4,p1,p4")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("-n", type=int, default=20000, help="messages, non-persistent runs")
    ap.add_argument("--np", type=int, default=4000, help="messages, persistent runs")
    ap.add_argument("-s", "--size", type=int, default=256)
    ap.add_argument(
        "--fsync", default="always", help="ZoneMQ's store.fsync (never: the code's CPU alone)"
    )
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="owbench-")
    cp = compile_bench(os.path.join(tmp, "classes"))
    targets: list[tuple[str, int, int]] = []
    procs = []
    try:
        for spec in args.code:
            name, _, code = spec.partition("=")
            workdir = os.path.join(tmp, name)
            os.makedirs(workdir)
            proc, port = start_zonemq(os.path.abspath(code), workdir, args.fsync)
            procs.append(proc)
            targets.append((name, port, proc.pid))
        if args.activemq:
            port, _, pid = args.activemq.partition(":")
            targets.append(("activemq", int(port), int(pid)))
        results: dict[tuple[str, str], list[dict]] = {}
        print(f"# load average before: {os.getloadavg()}", flush=True)
        for r in range(args.rounds):
            for scenario in args.scenarios.split(","):
                n = args.np if scenario.startswith("p") else args.n
                for name, port, pid in targets:
                    queue = f"owbench.{os.getpid()}.{scenario}.{r}"
                    out = run_one(cp, port, pid, scenario, n, args.size, queue)
                    results.setdefault((name, scenario), []).append(out)
                    print(
                        f"round {r} {scenario:4} {name:10} rate={out['rate']:7d} "
                        f"cpu_us={out['cpu_us']:7.1f} broker_cpu%={out['broker_cpu_pct']:5.1f} "
                        f"client_cpu_s={out['client_cpu_s']:5.2f} wall={out['wall']:5.2f} "
                        f"complete={out['complete']} "
                        f"load={os.getloadavg()[0]:.2f}",
                        flush=True,
                    )
                    if not out["complete"]:
                        print("  ", out["stderr"], flush=True)
        print(f"# load average after: {os.getloadavg()}")
        print("# medians: target scenario msg/s cpu_us/msg")
        for (name, scenario), outs in sorted(results.items(), key=lambda kv: kv[0][1]):
            rate = statistics.median(o["rate"] for o in outs)
            cpu = statistics.median(o["cpu_us"] for o in outs)
            print(f"{scenario:4} {name:10} {rate:9.0f} {cpu:8.1f}")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    main()
