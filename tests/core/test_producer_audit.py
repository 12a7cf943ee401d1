"""ProducerAudit (broker/core/audit.py): the last stored sequence per producer, bounded."""

from __future__ import annotations

import pytest

from broker.core.audit import MAX_PRODUCERS, ProducerAudit, split_id


def test_split_id_takes_the_number_after_the_last_colon() -> None:
    assert split_id("ID:host-1-2-3:1:4:7:42") == ("ID:host-1-2-3:1:4:7", 42)
    for text in ("ID:abc", "no-colon", "ID:x:1:1:", ":5", "ID:x:-3"):
        assert split_id(text) is None, text


def test_last_is_the_highest_noted_and_a_duplicate_is_at_or_below_it() -> None:
    audit = ProducerAudit()
    assert audit.last("p") == -1 and not audit.is_duplicate("p", 0)
    audit.note("p", 5)
    audit.note("p", 3)  # a compaction copy of an older ADD comes later in the journal
    assert audit.last("p") == 5
    assert audit.is_duplicate("p", 5) and audit.is_duplicate("p", 1)
    assert not audit.is_duplicate("p", 6) and not audit.is_duplicate("q", 1)
    audit.note_id("ID:c:1:1:9")
    audit.note_id(b"ID:c:1:1:10")  # not text: ignored
    audit.note_id("ID:c:1:1:x")
    assert audit.last("ID:c:1:1") == 9


def test_the_least_recently_noted_producer_goes_first_past_the_bound() -> None:
    audit = ProducerAudit(max_producers=3)
    for p in ("a", "b", "c"):
        audit.note(p, 1)
    audit.note("a", 2)  # a is recent again
    audit.note("d", 1)
    assert len(audit) == 3
    assert audit.last("b") == -1
    assert (audit.last("a"), audit.last("c"), audit.last("d")) == (2, 1, 1)
    # ActiveMQ 5.17's persistence audit (KahaDB's ActiveMQMessageAuditNoSync) tracks 64.
    assert ProducerAudit().max_producers == MAX_PRODUCERS == 64
    with pytest.raises(ValueError):
        ProducerAudit(0)
