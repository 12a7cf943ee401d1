"""Restart time against journal size and live data (issue 10).

Runs a broker child process (`python -m broker run` from a checkout, so an older one can
be measured the same way) on one data directory through C cycles. Each cycle starts the
broker and times it until it listens, then produces and consumes M persistent messages
over STOMP (auto ack, receipts), and ends with SIGKILL (`--stop kill`, the default: a
crash, nothing is tidied on the way down) or SIGTERM. Cycle 1 first leaves L messages on
a queue nobody reads: the live data. Prints one row per start:

    cycle  journal_MiB  segments  records  replay_s  listen_s  rss_MiB  peak_MiB

`journal_MiB` / `segments` are what the start found on disk, `records` and `replay_s`
come from its "journal: N records replayed ... recovered in S s" line, `listen_s` is from
the process start to its "broker ... started" line (imports and the journal together);
`rss_MiB` / `peak_MiB` are its resident memory then and its high-water mark (VmRSS,
VmHWM: what replay held at its peak, and what a deep backlog keeps once it is paged).

    python -m bench.restart [--code DIR] [--cycles 20] [--live 1000] [--churn 20000]
        [--size 256] [--segment-size 67108864] [--stop kill|term] [--dir DIR]

With restart time tracking live data, `records` and `replay_s` stay flat after the first
cycles; when the head is never compacted they grow until it fills a segment.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RECOVERED = re.compile(r"journal: (\d+) records replayed, (\d+) messages .* in ([\d.]+)s")
LISTENING = re.compile(r"stomp listener on (\S+):(\d+)")
STARTED = re.compile(r"broker \S+ started")
WAIT = 600.0


class Stomp:
    """A minimal blocking STOMP 1.2 client: enough to send with receipts and consume."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        self.buf = b""
        self.sock.sendall(b"CONNECT\naccept-version:1.2\nhost:/\n\n\x00")
        assert self.frame().startswith(b"CONNECTED")

    def frame(self) -> bytes:
        while True:
            end = self.buf.find(b"\x00")
            if end >= 0:
                frame, self.buf = self.buf[:end], self.buf[end + 1 :].lstrip(b"\r\n")
                return frame
            data = self.sock.recv(1 << 20)
            if not data:
                raise ConnectionError("broker closed the connection")
            self.buf += data

    def send(self, dest: str, n: int, size: int, tag: str) -> None:
        """`n` persistent messages; the last one's receipt says all are durable."""
        body = b"x" * size
        head = f"SEND\ndestination:{dest}\npersistent:true\ncontent-length:{size}\n"
        plain = head.encode() + b"\n" + body + b"\x00"
        batch = []
        for i in range(n):
            if i == n - 1:
                batch.append(f"{head}receipt:{tag}\n\n".encode() + body + b"\x00")
            else:
                batch.append(plain)
            if len(batch) == 256 or i == n - 1:
                self.sock.sendall(b"".join(batch))
                batch.clear()
        self.until(f"receipt-id:{tag}")

    def consume(self, dest: str, n: int, tag: str) -> None:
        self.sock.sendall(f"SUBSCRIBE\nid:{tag}\ndestination:{dest}\nack:auto\n\n\x00".encode())
        got = 0
        while got < n:
            if self.frame().startswith(b"MESSAGE"):
                got += 1
        # The acks of auto mode are journaled too: a receipt after them says they are in.
        self.sock.sendall(f"UNSUBSCRIBE\nid:{tag}\nreceipt:{tag}\n\n\x00".encode())
        self.until(f"receipt-id:{tag}")

    def until(self, marker: str) -> None:
        want = marker.encode()
        while want not in self.frame():
            pass

    def close(self) -> None:
        self.sock.close()


def journal_size(data: Path) -> tuple[float, int]:
    files = list((data / "journal").glob("*.zjournal")) if (data / "journal").exists() else []
    return sum(f.stat().st_size for f in files) / 2**20, len(files)


def memory(pid: int) -> tuple[float, float]:
    """VmRSS and VmHWM of a process, MiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


def start(code: Path, data: Path, segment_size: int) -> tuple[subprocess.Popen[str], dict]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZONEMQ_")}
    env.update(
        PYTHONPATH=str(code),
        PYTHONUNBUFFERED="1",
        ZONEMQ_STORE__SEGMENT_SIZE=str(segment_size),
        ZONEMQ_LISTENERS__AMQP__PORT="0",
        ZONEMQ_LISTENERS__AWS__PORT="0",
        ZONEMQ_LISTENERS__CONSOLE__PORT="0",
    )
    argv = [sys.executable, "-m", "broker", "run", "--data-dir", str(data), "--stomp-port", "0"]
    began = time.monotonic()
    proc = subprocess.Popen(
        argv, cwd=code, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    info: dict = {}
    assert proc.stderr is not None
    for line in proc.stderr:
        if m := RECOVERED.search(line):
            info.update(records=int(m.group(1)), messages=int(m.group(2)), replay=float(m.group(3)))
        elif m := LISTENING.search(line):
            info["port"] = int(m.group(2))
        elif STARTED.search(line):
            info["listen"] = time.monotonic() - began
            info["rss"], info["peak"] = memory(proc.pid)
            break
    else:
        raise RuntimeError(f"broker exited before it started (status {proc.wait()})")
    return proc, info


def stop(proc: subprocess.Popen[str], how: str) -> None:
    proc.send_signal(signal.SIGKILL if how == "kill" else signal.SIGTERM)
    if proc.stderr is not None:
        proc.stderr.close()  # nobody reads it any more; a blocked writer must not hang
    proc.wait(WAIT)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--code", type=Path, default=REPO, help="checkout whose broker to run")
    ap.add_argument("--cycles", type=int, default=20)
    ap.add_argument("--live", type=int, default=1000, help="messages left on a queue")
    ap.add_argument("--churn", type=int, default=20000, help="messages per cycle in and out")
    ap.add_argument("--size", type=int, default=256, help="body bytes")
    ap.add_argument("--segment-size", type=int, default=64 * 1024 * 1024)
    ap.add_argument("--stop", choices=["kill", "term"], default="kill")
    ap.add_argument("--dir", type=Path, help="data directory (default: a temporary one)")
    args = ap.parse_args(argv)
    data = args.dir or Path(tempfile.mkdtemp(prefix="zonemq-restart-"))
    print(f"# code={args.code} live={args.live} churn={args.churn} size={args.size} "
          f"segment_size={args.segment_size} stop={args.stop} dir={data}")  # fmt: skip
    print("cycle  journal_MiB  segments  records  replay_s  listen_s  rss_MiB  peak_MiB")
    try:
        for cycle in range(1, args.cycles + 1):
            mib, segments = journal_size(data)
            proc, info = start(args.code, data, args.segment_size)
            try:
                print(
                    f"{cycle:5d}  {mib:11.2f}  {segments:8d}  {info['records']:7d}"
                    f"  {info['replay']:8.2f}  {info['listen']:8.2f}"
                    f"  {info['rss']:7.0f}  {info['peak']:8.0f}",
                    flush=True,
                )
                client = Stomp(info["port"])
                if cycle == 1 and args.live:
                    client.send("/queue/bench.restart.live", args.live, args.size, "live")
                client.send("/queue/bench.restart.churn", args.churn, args.size, f"s{cycle}")
                client.consume("/queue/bench.restart.churn", args.churn, f"c{cycle}")
                client.close()
            finally:
                stop(proc, args.stop)
    finally:
        if args.dir is None:
            shutil.rmtree(data, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
