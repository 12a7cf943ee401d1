"""Is tight encoding or the marshalling cache worth building? Decode cost in Python of
what ActiveMQ 5.17's own OpenWireFormat writes under each option pair:
`PYTHONPATH=. python -m bench.openwire.tight_cost [ROUNDS]`.

bench/openwire/WireSizes.java marshals a JMS producer's 256-byte BytesMessage and a
consumer's standard MessageAck four ways (loose or tight, cache off or on; the second
frame of a connection, so the cache is warm). This script decodes each with
generated straight-line readers built the way codec/fast.py builds its loose ones —
loose with the cache, tight without and with it are prototypes here, not in the codec
— checks that every variant decodes to what the codec's loose reader makes of the
loose frame, and prints frame size and best-of-ROUNDS thread CPU ns per decode.
Which fields are cached is ActiveMQ's v12 marshallers' choice (`CACHED` below).
A prototype covers the structures in these frames only (no marshal-aware nested
message, no stack traces).
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.openwire.compare import JARS
from protocols.openwire.codec import commands as c
from protocols.openwire.codec import fast, utf

ROOT = Path(__file__).resolve().parents[2]

# (structure, field) pairs v12 marshals with (loose|tight)MarshalCachedObject.
CACHED = {
    ("Message", "producer_id"),
    ("Message", "destination"),
    ("Message", "transaction_id"),
    ("Message", "original_destination"),
    ("Message", "original_transaction_id"),
    ("Message", "target_consumer_id"),
    ("MessageAck", "destination"),
    ("MessageAck", "transaction_id"),
    ("MessageAck", "consumer_id"),
    ("MessageId", "producer_id"),
}

_i = struct.Struct(">i").unpack_from
_h = struct.Struct(">h").unpack_from
_H = struct.Struct(">H").unpack_from
_q = struct.Struct(">q").unpack_from
_b = struct.Struct(">b").unpack_from


def _owner(cls: type) -> str:
    return "Message" if issubclass(cls, c.Message) else cls.__name__


class State:
    """One connection's unmarshal cache (index → structure) and the tight bits."""

    def __init__(self) -> None:
        self.cache: dict[int, Any] = {}


def _loose_string(data: bytes, pos: int) -> tuple[str | None, int]:
    if not data[pos]:
        return None, pos + 1
    n = _H(data, pos + 1)[0]
    raw = data[pos + 3 : pos + 3 + n]
    return (raw.decode("ascii") if raw.isascii() else utf.decode(raw)), pos + 3 + n


def generate(tight: bool, cache: bool) -> dict[int, Any]:
    """Readers by type: ``read(data, pos, st, bits, bp) -> (value, pos, bp)``."""
    readers: dict[int, Any] = {}
    for kind, cls in c.TYPES.items():
        lines = []
        for i, (name, code) in enumerate(cls.FIELDS):
            cached = cache and (_owner(cls), name) in CACHED
            v = f"v{i}"
            if not tight:
                if code == "Z":
                    lines.append(f"{v} = data[pos] != 0; pos += 1")
                elif code == "B":
                    lines.append(f"{v} = _b(data, pos)[0]; pos += 1")
                elif code == "I":
                    lines.append(f"{v} = _i(data, pos)[0]; pos += 4")
                elif code == "L":
                    lines.append(f"{v} = _q(data, pos)[0]; pos += 8")
                elif code == "S":
                    lines.append(f"{v}, pos = _loose_string(data, pos)")
                elif code == "Y":
                    lines.append(
                        f"if data[pos]:\n    n = _i(data, pos + 1)[0]\n"
                        f"    {v} = data[pos + 5 : pos + 5 + n]"
                        f"; pos += 5 + n\nelse:\n    {v} = None; pos += 1"
                    )
                elif code == "N" and cached:
                    lines.append(
                        f"new = data[pos]; idx = _h(data, pos + 1)[0]; pos += 3\n"
                        f"if new:\n    {v}, pos, bp = _nested(data, pos, st, bits, bp)\n"
                        f"    st.cache[idx] = {v}\n"
                        f"else:\n    {v} = st.cache[idx]"
                    )
                elif code == "N":
                    lines.append(f"{v}, pos, bp = _nested(data, pos, st, bits, bp)")
                elif code in "AT":
                    lines.append(f"assert not data[pos]; {v} = None; pos += 1")
                else:
                    lines.append(f"raise NotImplementedError({code!r})")
                continue
            # Tight: each presence, flag and long-size bit comes from the bit stream.
            if code == "Z":
                lines.append(f"{v} = (bits >> bp) & 1 == 1; bp += 1")
            elif code == "B":
                lines.append(f"{v} = _b(data, pos)[0]; pos += 1")
            elif code == "I":
                lines.append(f"{v} = _i(data, pos)[0]; pos += 4")
            elif code == "L":
                lines.append(
                    f"if (bits >> bp) & 1:\n"
                    f"    if (bits >> (bp + 1)) & 1:\n        {v} = _q(data, pos)[0]; pos += 8\n"
                    f"    else:\n        {v} = _i(data, pos)[0] & 0xFFFFFFFF; pos += 4\n"
                    f"elif (bits >> (bp + 1)) & 1:\n    {v} = _H(data, pos)[0]; pos += 2\n"
                    f"else:\n    {v} = 0\nbp += 2"
                )
            elif code == "S":
                lines.append(
                    f"if (bits >> bp) & 1:\n    n = _H(data, pos)[0]\n"
                    f"    raw = data[pos + 2 : pos + 2 + n]\n"
                    f"    ascii = (bits >> (bp + 1)) & 1\n"
                    f"    {v} = raw.decode('ascii') if ascii else utf.decode(raw)\n"
                    f"    pos += 2 + n; bp += 2\nelse:\n    {v} = None; bp += 1"
                )
            elif code == "Y":
                lines.append(
                    f"if (bits >> bp) & 1:\n    n = _i(data, pos)[0]\n"
                    f"    {v} = data[pos + 4 : pos + 4 + n]"
                    f"; pos += 4 + n\nelse:\n    {v} = None\nbp += 1"
                )
            elif code == "N" and cached:
                lines.append(
                    f"new = (bits >> bp) & 1; bp += 1; idx = _h(data, pos)[0]; pos += 2\n"
                    f"if new:\n    {v}, pos, bp = _nested(data, pos, st, bits, bp)\n"
                    f"    st.cache[idx] = {v}\n"
                    f"else:\n    {v} = st.cache[idx]"
                )
            elif code == "N":
                lines.append(f"{v}, pos, bp = _nested(data, pos, st, bits, bp)")
            elif code in "AT":
                lines.append(f"assert not (bits >> bp) & 1; {v} = None; bp += 1")
            else:
                lines.append(f"raise NotImplementedError({code!r})")
        args = ", ".join(f"v{i}" for i in range(len(cls.FIELDS)))
        body = "".join("".join(f"    {p}\n" for p in line.split("\n")) for line in lines)
        src = f"def read(data, pos, st, bits, bp):\n{body}    return cls({args}), pos, bp\n"
        namespace = dict(cls=cls, _b=_b, _i=_i, _h=_h, _H=_H, _q=_q, utf=utf)
        namespace["_loose_string"] = _loose_string
        namespace["_nested"] = _nested_loose if not tight else _nested_tight
        namespace["READERS"] = readers
        exec(
            compile(src, f"<{'tight' if tight else 'loose'} read {cls.__name__}>", "exec"),
            namespace,
        )
        readers[kind] = namespace["read"]
        namespace["_nested_readers"] = readers
    return readers


def _nested_loose(data: bytes, pos: int, st: State, bits: int, bp: int) -> tuple[Any, int, int]:
    if not data[pos]:
        return None, pos + 1, bp
    return st.readers[data[pos + 1]](data, pos + 2, st, bits, bp)  # type: ignore[attr-defined]


def _nested_tight(data: bytes, pos: int, st: State, bits: int, bp: int) -> tuple[Any, int, int]:
    if not (bits >> bp) & 1:
        return None, pos, bp + 1
    return st.readers[data[pos]](data, pos + 1, st, bits, bp + 1)  # type: ignore[attr-defined]


def decode(body: bytes, tight: bool, st: State) -> Any:
    """A frame body (after the size prefix): the type byte, [the bit stream], fields."""
    kind = body[0]
    if not tight:
        value, _pos, _ = st.readers[kind](body, 1, st, 0, 0)  # type: ignore[attr-defined]
        return value
    n = body[1]
    start = 2
    if n == 0xC0:
        n, start = body[2], 3
    elif n == 0x80:
        n, start = _H(body, 2)[0], 4
    bits = int.from_bytes(body[start : start + n], "little")
    value, _pos, _ = st.readers[kind](body, start + n, st, bits, 0)  # type: ignore[attr-defined]
    return value


def frames() -> list[tuple[bool, bool, int, str, bytes]]:
    with tempfile.TemporaryDirectory() as tmp:
        cp = ":".join(JARS)
        src = ROOT / "bench" / "openwire" / "WireSizes.java"
        subprocess.run(["javac", "-cp", cp, "-d", tmp, str(src)], check=True)
        out = subprocess.run(
            ["java", "-cp", f"{cp}:{tmp}", "WireSizes"], capture_output=True, text=True, check=True
        ).stdout
    rows = []
    for line in out.splitlines():
        tight, cache, seq, name, hexed = line.split()
        rows.append((tight == "true", cache == "true", int(seq), name, bytes.fromhex(hexed)[4:]))
    return rows


def best_ns(fn: Any, rounds: int, n: int = 2000) -> float:
    best = float("inf")
    for _ in range(rounds):
        t0 = time.thread_time_ns()
        for _ in range(n):
            fn()
        best = min(best, (time.thread_time_ns() - t0) / n)
    return best


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    rows = frames()
    reference = {
        (seq, name): fast.decode(body) for t, k, seq, name, body in rows if not t and not k
    }
    print(f"# load average {os.getloadavg()}")
    print("encoding cache command               bytes  ns/decode  (codec/fast.py)")
    states: dict[tuple[bool, bool], State] = {}
    for tight, cache, seq, name, body in rows:
        st = states.get((tight, cache))
        if st is None:
            # One connection per option pair: its first frames fill the cache.
            st = states[tight, cache] = State()
            st.readers = generate(tight, cache)  # type: ignore[attr-defined]
        value = decode(body, tight, st)
        assert value == reference[seq, name], (tight, cache, name, value)
        if seq == 1:
            continue
        ns = best_ns(lambda body=body, st=st, tight=tight: decode(body, tight, st), rounds)
        mode = "tight" if tight else "loose"
        line = f"{mode:8} {cache!s:5} {name:21} {len(body) + 4:5d} {ns:10.0f}"
        if not tight and not cache:
            line += f"   ({best_ns(lambda body=body: fast.decode(body), rounds):.0f})"
        print(line)


if __name__ == "__main__":
    main()
