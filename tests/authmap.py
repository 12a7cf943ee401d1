"""The users, groups and authorization map the *_authz tests share.

alice's password is stored as a scrypt hash, bob's in plain (the old form). alice owns
`alice.>` queues; `shared.>` is read and written by both but only alice may create in
it; temporary destinations are used by both but created only by alice; `zonemq.>` (the
test clients' sync queue) is open to both. The SQS tests use dot-less names (SQS allows
no dots): alice-inbox and alice-private are alice's, shared-jobs is like shared.>.
"""

from __future__ import annotations

from typing import Any

from broker.passwords import hash_password

ALICE_PASSWORD = "alice-pw"
BOB_PASSWORD = "bob-pw"
ALICE_HASH = hash_password(ALICE_PASSWORD)


def overrides(**extra: Any) -> dict[str, Any]:
    """BrokerThread overrides: users, groups and the map (plus `extra` dotted keys)."""
    everyone = ["alices", "bobs"]
    settings: dict[str, Any] = {
        "auth.users": {"alice": ALICE_HASH, "bob": BOB_PASSWORD},
        "auth.groups": {"alices": ["alice"], "bobs": ["bob"]},
        "auth.sqs_secrets": {"alice": "alice-sqs-secret"},
        "auth.authorization": [
            {"queue": "alice.>", "read": ["alices"], "write": ["alices"], "admin": ["alices"]},
            {"queue": "shared.>", "read": everyone, "write": everyone, "admin": ["alices"]},
            {"queue": "zonemq.>", "read": everyone, "write": everyone, "admin": everyone},
            # SQS queue names have no dots: one segment, matched by exact name or "*".
            {"queue": "alice-inbox", "read": ["alices"], "write": ["alices"], "admin": ["alices"]},
            {
                "queue": "alice-private",
                "read": ["alices"],
                "write": ["alices"],
                "admin": ["alices"],
            },
            {"queue": "shared-jobs", "read": everyone, "write": everyone, "admin": ["alices"]},
            {"temp": True, "read": everyone, "write": everyone, "admin": ["alices"]},
        ],
    }
    settings.update(extra)
    return settings
