"""Configured passwords: the scrypt hash format of ``[auth] users`` and its check.

``scrypt$<n>$<r>$<p>$<salt>$<hash>`` with unpadded base64 salt and hash; anything else
is a plain-text password (accepted for old configs). A module of its own, importing
nothing of the broker, because both the settings (which validate hashes at load) and
broker.auth (which checks logins) need it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
_SCRYPT_MAXMEM = 256 * 1024 * 1024


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """A self-describing scrypt hash of `password` for ``[auth] users``."""
    salt = os.urandom(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, dklen=32, maxmem=_SCRYPT_MAXMEM
    )
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(digest)}"


def is_hashed(stored: str) -> bool:
    """Whether a configured password is a scrypt hash (else it is plain text)."""
    return stored.startswith("scrypt$")


def parse_hash(stored: str) -> tuple[int, int, int, bytes, bytes]:
    """(n, r, p, salt, digest) of a scrypt hash; ValueError if it is malformed."""
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        raise ValueError("expected scrypt$<n>$<r>$<p>$<salt>$<hash>")
    n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
    if n < 2 or n & (n - 1) or r < 1 or p < 1 or n * r * 128 > _SCRYPT_MAXMEM:
        raise ValueError("scrypt parameters out of range")
    salt, digest = _unb64(parts[4]), _unb64(parts[5])
    if not salt or len(digest) < 16:
        raise ValueError("scrypt salt or hash too short")
    return n, r, p, salt, digest


def verify_password(stored: str, password: str) -> bool:
    """Check `password` against a configured one (hash or plain), in constant time."""
    if not is_hashed(stored):
        return hmac.compare_digest(stored.encode(), password.encode())
    n, r, p, salt, digest = parse_hash(stored)
    got = hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, dklen=len(digest), maxmem=_SCRYPT_MAXMEM
    )
    return hmac.compare_digest(got, digest)
