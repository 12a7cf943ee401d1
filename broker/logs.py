"""Logging: the process's handler (text or one JSON object per line) and `LogLimiter`,
which bounds how often one kind of security warning is logged.

`--log-format json` (``broker.log_format``, ``ZONEMQ_BROKER__LOG_FORMAT``) writes one
object per line: ``ts`` (UTC, ISO 8601 with milliseconds), ``level``, ``logger``,
``msg`` (the formatted message), ``exc`` when there is a traceback, and every field a
caller passed in ``extra=`` (the security warnings pass ``event``, ``protocol``,
``peer``, ``user``, ``reason``, ``suppressed``), so a log pipeline need not parse text.

A flood of bad logins must not flood the log: `LogLimiter` lets at most `burst` lines
of one key (say: failed logins over STOMP from one host) through per `interval`
seconds, and counts the rest; the next line of that key that passes carries the count
(``suppressed``). A global budget bounds what many keys (a spray of source addresses)
can write together, and the table of keys is bounded (oldest evicted).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from datetime import UTC, datetime
from typing import Any

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# LogRecord's own attributes: what is not one of these came from `extra=`.
_STANDARD = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in out:
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        # default=str: an extra value JSON cannot hold is written as its text, never lost.
        return json.dumps(out, ensure_ascii=False, default=str)


def configure(level: str, fmt: str = "text") -> None:
    """The root handler on stderr, in `fmt` ("text" or "json")."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())


class LogLimiter:
    """At most `burst` lines per key per `interval`, `budget` over all keys; see the
    module docstring. Used from the event loop only."""

    def __init__(
        self,
        *,
        burst: int = 5,
        interval: float = 60.0,
        budget: int = 100,
        max_keys: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.burst = burst
        self.interval = interval
        self.budget = budget
        self.max_keys = max_keys
        self.clock = clock
        # key -> [window start, lines in window, suppressed since the last line]
        self._keys: OrderedDict[Hashable, list[float]] = OrderedDict()
        self._window = clock()
        self._spent = 0

    def allow(self, key: Hashable) -> int | None:
        """None: suppress this line (it is counted). Else log it, noting the returned
        number of lines of this key suppressed before it."""
        now = self.clock()
        if now - self._window >= self.interval:
            self._window, self._spent = now, 0
        entry = self._keys.get(key)
        if entry is None:
            entry = [now, 0, 0]
            self._keys[key] = entry
            while len(self._keys) > self.max_keys:
                self._keys.popitem(last=False)
        else:
            self._keys.move_to_end(key)
            if now - entry[0] >= self.interval:
                entry[0], entry[1] = now, 0
        if entry[1] >= self.burst or self._spent >= self.budget:
            entry[2] += 1
            return None
        entry[1] += 1
        self._spent += 1
        suppressed, entry[2] = int(entry[2]), 0
        return suppressed
