"""Summarise `py-spy record -f raw` output: self and inclusive time per function of the
broker's main thread (stacks through broker/cli.py), as a share of its samples.

    python -m bench.pyspy_summary out.txt [TOP]
"""

from __future__ import annotations

import re
import sys
from collections import Counter

_FRAME = re.compile(r"(.*?) \((.*?)(?::\d+)?\)$")


def _name(frame: str) -> str:
    m = _FRAME.match(frame)
    if not m:
        return frame
    path = m.group(2).split("site-packages/")[-1].replace("/work/main/", "")
    return f"{m.group(1)} ({path})"


def summarise(
    path: str, main_marker: str = "broker/cli.py"
) -> tuple[int, Counter[str], Counter[str]]:
    """(samples, self counts, inclusive counts) of the stacks containing `main_marker`."""
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    with open(path) as f:
        for line in f:
            line = line.rstrip()
            if not line or main_marker not in line:
                continue
            stack, _, count = line.rpartition(" ")
            n = int(count)
            total += n
            parts = stack.split(";")
            frames = [_name(x) for x in parts if not x.startswith(("process ", "thread "))]
            own[frames[-1]] += n
            for name in set(frames):
                incl[name] += n
    return total, own, incl


def main(argv: list[str]) -> int:
    top = int(argv[1]) if len(argv) > 1 else 25
    total, own, incl = summarise(argv[0])
    print(f"main-thread samples: {total}")
    for title, counts in (("self", own), ("inclusive", incl)):
        print(f"--- {title}")
        for name, n in counts.most_common(top):
            print(f"{100 * n / max(total, 1):5.1f}% {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
