"""Cron entries as ActiveMQ's scheduler reads them (AMQ_SCHEDULED_CRON): five fields.

    minute (0-59)  hour (0-23)  day of month (1-31)  month (1-12)  day of week (0-6, 0 Sunday)

Each field is `*` (or `?`), a number, a range `a-b`, a list of those separated by
commas, or a step `x/n`. A step keeps the values of `x` (`*`, a range or a number) that
are multiples of `n`, which is how ActiveMQ's CronParser reads it: `*/15` is 0, 15, 30,
45 and `1-30/5` is 5, 10, ... 30 (classic cron would start at 1). When both day fields
are restricted a day matches if either does (classic cron). Times are the broker's local
time, as ActiveMQ's (java.util.Calendar); the result is always a whole minute strictly
after the given time.

Departures from ActiveMQ's parser, which are refusals of entries it takes and then
computes nonsense for: values past a field's range (ActiveMQ accepts minute 60, hour 24
and day 32), a step of 0, and an entry that never falls due (`0 0 30 2 *`) are errors
here (CronError), as are the ones ActiveMQ refuses (wrong number of fields, a value that
is not a number, an empty set).
"""

from __future__ import annotations

import datetime as dt

_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 6),
)
# How far ahead `next_after` looks before it calls an entry one that never falls due:
# long enough for any real date (29 February comes within 8 years).
_HORIZON_DAYS = 366 * 9


class CronError(ValueError):
    """A cron entry the scheduler cannot take; the text says which field and why."""


def _number(text: str, field: str, entry: str) -> int:
    if not text.isdigit():
        raise CronError(f"Invalid cron entry {entry!r}: {field} {text!r} is not a number")
    return int(text)


def _values(token: str, field: str, low: int, high: int, entry: str) -> set[int]:
    if "/" in token:
        base, _, step_text = token.partition("/")
        step = _number(step_text, field, entry)
        if step == 0:
            raise CronError(f"Invalid cron entry {entry!r}: {field} step must not be 0")
        return {v for v in _values(base, field, low, high, entry) if v % step == 0}
    if "," in token:
        out: set[int] = set()
        for part in token.split(","):
            out |= _values(part, field, low, high, entry)
        return out
    if token in ("*", "?"):
        return set(range(low, high + 1))
    if "-" in token:
        first_text, _, last_text = token.partition("-")
        first = _number(first_text, field, entry)
        last = _number(last_text, field, entry)
        values = set(range(first, last + 1))
    else:
        values = {_number(token, field, entry)}
    for v in values:
        if not low <= v <= high:
            raise CronError(f"Invalid cron entry {entry!r}: {field} {v} is not in {low}-{high}")
    return values


class Cron:
    """A parsed cron entry; `next_after(ms)` is its next due time."""

    __slots__ = ("days", "dom_all", "dow_all", "entry", "hours", "minutes", "months", "weekdays")

    def __init__(self, entry: str) -> None:
        tokens = entry.split()
        if len(tokens) != 5:
            raise CronError(
                f"Invalid cron entry {entry!r}: expected 5 fields "
                "(minute hour day-of-month month day-of-week), got "
                f"{len(tokens)}"
            )
        sets = []
        for token, (field, low, high) in zip(tokens, _FIELDS, strict=True):
            values = _values(token, field, low, high, entry)
            if not values:
                raise CronError(f"Invalid cron entry {entry!r}: {field} {token!r} matches nothing")
            sets.append(values)
        self.entry = entry
        self.minutes = sorted(sets[0])
        self.hours = sorted(sets[1])
        self.days = sets[2]
        self.months = sets[3]
        self.weekdays = sets[4]
        self.dom_all = len(self.days) == 31
        self.dow_all = len(self.weekdays) == 7
        # Refuse now what would never fall due, rather than hold it for ever.
        self.next_after(0)

    def _day_matches(self, day: dt.date) -> bool:
        if day.month not in self.months:
            return False
        dom = day.day in self.days
        dow = (day.isoweekday() % 7) in self.weekdays
        if self.dom_all or self.dow_all:
            return dom and dow
        return dom or dow

    def next_after(self, ms: int) -> int:
        """The first whole minute strictly after `ms` (ms since the epoch) that the
        entry matches, in ms since the epoch, local time."""
        start = dt.datetime.fromtimestamp((ms // 60000 + 1) * 60, tz=None)
        day = start.date()
        for _ in range(_HORIZON_DAYS):
            if self._day_matches(day):
                for hour in self.hours:
                    for minute in self.minutes:
                        when = dt.datetime(day.year, day.month, day.day, hour, minute)
                        if when >= start:
                            return int(when.timestamp()) * 1000
            day += dt.timedelta(days=1)
        raise CronError(f"Invalid cron entry {self.entry!r}: it never falls due")
