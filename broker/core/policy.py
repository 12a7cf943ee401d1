"""Per-destination policy (ActiveMQ's policyEntry): dead letter queue, redelivery limit,
priority dispatch and the message group map's size, chosen by name pattern.

Patterns use ActiveMQ's wildcards: "." separates segments, "*" matches one segment and
">" matches the rest (one or more). The first configured policy whose pattern matches
wins; otherwise the destination defaults apply. Results are cached per name because
lookups happen whenever a message is dead-lettered.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Policy:
    """What the core needs to know about one destination."""

    dead_letter_queue: str
    # Counted returns past which a message is dead-lettered; -1: none (ActiveMQ's default).
    max_redeliveries: int
    # ActiveMQ's prioritizedMessages: off by default, so a destination dispatches in
    # arrival order whatever a message's priority says (issue 12).
    prioritized_messages: bool = False
    # Message groups a queue keeps an owner for, least recently used dropped first
    # (ActiveMQ's default messageGroupMapFactory: a CachedMessageGroupMap of 1024).
    message_group_cache_size: int = 1024


def wildcard_match(pattern: str, name: str) -> bool:
    """True if `name` matches the ActiveMQ wildcard `pattern`."""
    pat = pattern.split(".")
    parts = name.split(".")
    for i, p in enumerate(pat):
        if p == ">":
            return len(parts) > i
        if i >= len(parts):
            return False
        if p != "*" and p != parts[i]:
            return False
    return len(parts) == len(pat)


class PolicyMap:
    """Resolves a destination name to its Policy (first matching pattern, else defaults)."""

    def __init__(self, default: Policy, rules: list[tuple[str, Policy]]) -> None:
        self._default = default
        self._rules = rules
        self._cache: dict[str, Policy] = {}

    def for_name(self, name: str) -> Policy:
        policy = self._cache.get(name)
        if policy is None:
            policy = next((p for pat, p in self._rules if wildcard_match(pat, name)), self._default)
            if len(self._cache) > 10000:
                self._cache.clear()
            self._cache[name] = policy
        return policy
