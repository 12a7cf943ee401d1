"""MessageIds from protocols/aws/ids.py: uuid4's form and randomness, read in blocks."""

from __future__ import annotations

import os
import uuid

from protocols.aws import ids


def test_message_ids_are_uuid4_strings_unique_across_blocks() -> None:
    # Several blocks of 256, so refills are crossed; any repeat would show.
    made = [ids.message_id() for _ in range(5000)]
    assert len(set(made)) == len(made)
    for text in made:
        u = uuid.UUID(text)
        assert (u.version, u.variant, str(u)) == (4, uuid.RFC_4122, text)
    # Each id is 122 fresh bits: every hex digit but the fixed ones takes every value.
    digits = {i: {t.replace("-", "")[i] for t in made} for i in range(32)}
    assert digits[12] == {"4"} and digits[16] == set("89ab")
    assert all(len(digits[i]) == 16 for i in range(32) if i not in (12, 16))


def test_forked_child_does_not_repeat_its_parents_ids() -> None:
    ids.message_id()  # a block is read and partly left in the pool
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.write(write, ",".join(ids.message_id() for _ in range(4)).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        child = f.read().decode().split(",")
    os.waitpid(pid, 0)
    parent = [ids.message_id() for _ in range(4)]
    assert len(child) == 4 and not set(child) & set(parent)
