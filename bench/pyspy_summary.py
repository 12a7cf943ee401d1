"""Summarise `py-spy record -f raw` output: self and inclusive time per function of the
broker's main thread (stacks through broker/cli.py), as a share of its samples; self
time per group of modules (STOMP parse, encode, core dispatch, ack, transport ...); and
the source lines with the most self time.

    python -m bench.pyspy_summary out.txt [TOP]

Without `--native`, time a Python line spends in C (a socket send inside
`transport.write`, uvloop's own reading) is that line's self time, so the line view
tells a syscall apart from Python work.
"""

from __future__ import annotations

import re
import sys
from collections import Counter

_FRAME = re.compile(r"(.*?) \((.*?)(?::(\d+))?\)$")

# The pure-Python modules are _codec.py and _mapping.py (codec.py and mapping.py only
# choose between them and their compiled copies, which py-spy sees only with --native).
# (group, path fragment, function-name fragment or ""): the first match wins; a frame
# is put in the group of its own code, not of its callers.
GROUPS: tuple[tuple[str, str, str], ...] = (
    ("STOMP parse (codec)", "protocols/stomp/_codec", "FrameParser"),
    ("STOMP parse (codec)", "protocols/stomp/_codec", "_unescape"),
    ("STOMP parse (codec)", "protocols/stomp/_codec", "Frame."),
    ("STOMP encode (codec, mapping)", "protocols/stomp/_codec", ""),
    ("STOMP encode (codec, mapping)", "protocols/stomp/_mapping", "encode"),
    ("STOMP encode (codec, mapping)", "protocols/stomp/_mapping", "message_headers"),
    ("STOMP encode (codec, mapping)", "protocols/stomp/_mapping", "needs_private"),
    ("STOMP SEND -> core Message (mapping)", "protocols/stomp/_mapping", ""),
    ("STOMP connection: ACK frames", "protocols/stomp/connection.py", "ack"),
    ("STOMP connection: deliver (MESSAGE)", "protocols/stomp/connection.py", "deliver"),
    ("STOMP connection: SEND frames", "protocols/stomp/connection.py", "_on_send"),
    ("STOMP connection: SEND frames", "protocols/stomp/connection.py", "_destination"),
    ("STOMP connection: SEND frames", "protocols/stomp/connection.py", "_authorize"),
    ("STOMP connection: read, frame loop, other", "protocols/stomp/", ""),
    ("connection writes (push.py: _send/_flush/_write)", "broker/push.py", "_send"),
    ("connection writes (push.py: _send/_flush/_write)", "broker/push.py", "_flush"),
    ("connection writes (push.py: _send/_flush/_write)", "broker/push.py", "_write"),
    ("connection flow control (push.py, other)", "broker/push.py", ""),
    ("core: ack", "broker/core/queue.py", "ack"),
    ("core: ack", "broker/core/core.py", "acked"),
    ("core: dispatch/deliver (queue)", "broker/core/queue.py", ""),
    ("core: send/route", "broker/core/core.py", ""),
    ("core: send/route", "broker/core/routing.py", ""),
    ("core: message model", "broker/core/message.py", ""),
    ("core: other", "broker/core/", ""),
    ("AMQP 1.0 (protocols/amqp)", "protocols/amqp/", ""),
    ("python-qpid-proton", "proton", ""),
    ("SQS/SNS (protocols/aws, http)", "protocols/", ""),
    ("aiohttp", "aiohttp/", ""),
    ("store/journal", "broker/store/", ""),
    ("metrics", "broker/metrics.py", ""),
    ("logging", "logging/", ""),
    ("asyncio/uvloop event loop and transport", "asyncio/", ""),
    ("asyncio/uvloop event loop and transport", "uvloop/", ""),
    ("broker process (cli, server, tcp)", "broker/", ""),
)


def _parts(frame: str) -> tuple[str, str, str]:
    """(function, path, line) of one raw frame."""
    m = _FRAME.match(frame)
    if not m:
        return frame, "", ""
    path = m.group(2).split("site-packages/")[-1]
    path = re.sub(r"^/work/[^/]+/", "", path)
    return m.group(1), path, m.group(3) or ""


def _name(frame: str) -> str:
    func, path, _ = _parts(frame)
    return f"{func} ({path})" if path else func


def group_of(frame: str) -> str:
    """The module group of one raw frame (see GROUPS)."""
    func, path, _ = _parts(frame)
    for group, fragment, fname in GROUPS:
        if fragment in path and fname in func:
            return group
    return "other"


def summarise(
    path: str, main_marker: str = "broker/cli.py"
) -> tuple[int, Counter[str], Counter[str]]:
    """(samples, self counts, inclusive counts) of the stacks containing `main_marker`."""
    total, own, incl, _, _ = summarise_all(path, main_marker)
    return total, own, incl


def summarise_all(
    path: str, main_marker: str = "broker/cli.py"
) -> tuple[int, Counter[str], Counter[str], Counter[str], Counter[str]]:
    """As `summarise`, plus self counts per module group and per source line."""
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    groups: Counter[str] = Counter()
    lines: Counter[str] = Counter()
    total = 0
    with open(path) as f:
        for line in f:
            line = line.rstrip()
            if not line or main_marker not in line:
                continue
            stack, _, count = line.rpartition(" ")
            n = int(count)
            total += n
            parts = [x for x in stack.split(";") if not x.startswith(("process ", "thread "))]
            frames = [_name(x) for x in parts]
            own[frames[-1]] += n
            groups[group_of(parts[-1])] += n
            func, fpath, lineno = _parts(parts[-1])
            lines[f"{fpath}:{lineno} {func}"] += n
            for name in set(frames):
                incl[name] += n
    return total, own, incl, groups, lines


def main(argv: list[str]) -> int:
    top = int(argv[1]) if len(argv) > 1 else 25
    total, own, incl, groups, lines = summarise_all(argv[0])
    print(f"main-thread samples (idle excluded by py-spy): {total}")
    for title, counts in (
        ("self time by module group", groups),
        ("self", own),
        ("inclusive", incl),
        ("self time by source line", lines),
    ):
        print(f"--- {title}")
        for name, n in counts.most_common(top):
            print(f"{100 * n / max(total, 1):5.1f}% {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
