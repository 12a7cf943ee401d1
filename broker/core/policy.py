"""Per-destination policy (ActiveMQ's policyEntry), chosen by name pattern: dead-letter
strategy, redelivery limit, priority dispatch, memory and pending limits, producer flow
control, prefetch, expired-message handling, garbage collection of inactive destinations
and the message group map's size.

Patterns use ActiveMQ's wildcards: "." separates segments, "*" matches one segment and
">" matches the rest (one or more). The first configured policy whose pattern (and kind,
if it names one) matches wins; otherwise the destination defaults apply. A policy entry
states only what it changes: the configuration fills the rest from `[destinations]`
(broker/server.py), so every Policy here is complete. Results are cached per name
because lookups happen whenever a destination is created or a message dead-lettered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

DLQ_SHARED = "shared"
DLQ_INDIVIDUAL = "individual"
DEAD_LETTER_STRATEGIES = (DLQ_SHARED, DLQ_INDIVIDUAL)


@dataclass(frozen=True, slots=True)
class Policy:
    """What the core needs to know about one destination."""

    # The shared strategy's queue (ActiveMQ's sharedDeadLetterStrategy).
    dead_letter_queue: str
    # Counted returns past which a message is dead-lettered; -1: none (ActiveMQ's default).
    max_redeliveries: int
    # ActiveMQ's prioritizedMessages: off by default, so a destination dispatches in
    # arrival order whatever a message's priority says (issue 12).
    prioritized_messages: bool = False
    # Message groups a queue keeps an owner for, least recently used dropped first
    # (ActiveMQ's default messageGroupMapFactory: a CachedMessageGroupMap of 1024).
    message_group_cache_size: int = 1024
    # "shared": every destination's dead letters go to `dead_letter_queue`;
    # "individual": to `dead_letter_prefix` + the destination's name (a queue, for topics
    # too), ActiveMQ's individualDeadLetterStrategy with its default "DLQ." prefixes.
    dead_letter_strategy: str = DLQ_SHARED
    dead_letter_prefix: str = "DLQ."
    # ActiveMQ's processExpired / processNonPersistent on the dead-letter strategy.
    expired_to_dlq: bool = True
    dead_letter_non_persistent: bool = False
    # Bytes a queue holds in memory before persistent messages are paged out and
    # non-persistent producers wait (ActiveMQ's memoryLimit).
    memory_limit: int = 64 * 1024 * 1024
    # ActiveMQ's producerFlowControl (true by default): a producer whose message a queue
    # over its memory limit must keep in memory (not journaled, so not paged out) is
    # paused until the queue drains. False: it is not; such messages are kept past the
    # limit, within the broker-wide `overflow_memory_limit` (the core's), past which
    # those producers are paused after all (ActiveMQ spools them to its temp store,
    # ZoneMQ has none).
    producer_flow_control: bool = True
    # Prefetch for consumers that do not ask for one (ActiveMQ's queuePrefetch and
    # topicPrefetch).
    queue_prefetch: int = 1000
    topic_prefetch: int = 32766
    # Messages a topic subscriber may fall behind (constantPendingMessageLimitStrategy).
    topic_pending_limit: int = 10000
    # ActiveMQ's advisoryForSlowConsumers: an advisory when a topic subscriber falls
    # behind its pending limit.
    advisory_for_slow_consumers: bool = False
    # ActiveMQ's gcInactiveDestinations and inactiveTimoutBeforeGC (here in seconds).
    gc_inactive_destinations: bool = False
    inactive_timeout_before_gc: float = 60.0

    def dead_letter_name(self, name: str) -> str:
        """The dead letter queue for messages of destination `name`."""
        if self.dead_letter_strategy == DLQ_INDIVIDUAL:
            return self.dead_letter_prefix + name
        return self.dead_letter_queue

    def is_dead_letter_queue(self, name: str) -> bool:
        """Whether queue `name` is a dead letter queue under this policy: a message that
        fails there is dropped, never dead-lettered again (as ActiveMQ's isDLQ)."""
        if name == self.dead_letter_queue:
            return True
        return self.dead_letter_strategy == DLQ_INDIVIDUAL and name.startswith(
            self.dead_letter_prefix
        )


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


# A rule: (pattern, policy) or (pattern, policy, kind), the kind "" for every
# destination, else "queue" (temporary queues too) or "topic" (temporary topics too), as
# ActiveMQ's policyEntry says queue= or topic=.
Rule = tuple[str, Policy] | tuple[str, Policy, str]


class PolicyMap:
    """Resolves a destination to its Policy (first matching rule, else defaults)."""

    def __init__(self, default: Policy, rules: Sequence[Rule]) -> None:
        self._default = default
        self._rules: list[tuple[str, Policy, str]] = [
            (r[0], r[1], r[2] if len(r) == 3 else "") for r in rules
        ]
        self._cache: dict[tuple[str, bool], Policy] = {}

    @property
    def default(self) -> Policy:
        return self._default

    @property
    def any_gc(self) -> bool:
        """Whether any destination may be garbage-collected when inactive."""
        return self._default.gc_inactive_destinations or any(
            p.gc_inactive_destinations for _, p, _ in self._rules
        )

    def for_name(self, name: str, *, queue: bool = True) -> Policy:
        """The policy of the queue (or, with `queue=False`, the topic) called `name`."""
        key = (name, queue)
        policy = self._cache.get(key)
        if policy is None:
            kind = "queue" if queue else "topic"
            policy = next(
                (
                    p
                    for pat, p, k in self._rules
                    if (not k or k == kind) and wildcard_match(pat, name)
                ),
                self._default,
            )
            if len(self._cache) > 10000:
                self._cache.clear()
            self._cache[key] = policy
        return policy
