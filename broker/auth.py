"""Authentication and authorization, protocol-neutral: users, groups, the authorization
map and the login throttle. Every protocol calls `Auth`; none checks a password itself.

- Passwords in ``[auth] users`` are scrypt hashes (``scrypt$<n>$<r>$<p>$<salt>$<hash>``,
  base64 salt and hash; `zonemq passwd` makes one) or, for old configs, plain text
  (accepted, with one warning at start). A successful check is remembered as an HMAC of
  the password under a per-process key, so a client that reconnects does not pay the
  ~60 ms of scrypt on the event loop again; failures always pay it and are throttled.
- The authorization map is ActiveMQ's authorizationPlugin: entries per destination
  pattern (ActiveMQ wildcards, queue or topic) with `read` (consume, browse), `write`
  (send) and `admin` (create a destination that does not exist yet) group lists; the
  ACL of an operation is the union of every matching entry's (ActiveMQ's
  DefaultAuthorizationMap). No matching entry: denied. One `temp = true` entry is the
  tempDestinationAuthorizationEntry; without it temporary destinations are open to every
  authenticated user, as in ActiveMQ. With no entries at all, every authenticated user
  may do everything (ActiveMQ without the plugin).
- The login throttle counts failures per source address (host, not port) in a window;
  past `max_login_failures` that address is refused for `login_block_time` seconds. Its
  table holds at most `THROTTLE_SOURCES` addresses (oldest evicted), so a spray of
  sources cannot grow memory.

Every refusal (a failed or throttled login, a bad SigV4 signature, a denied operation)
is one WARNING of logger ``zonemq.auth`` naming the protocol, the peer address, the
user (never the password) and the reason, also as `extra` fields (``event``,
``protocol``, ``peer``, ``user``, ``reason``, ``suppressed``: structured in
``--log-format json``), through a `LogLimiter` keyed by event, protocol, peer and reason
(and user, for denials): a flood of bad logins writes a few lines a minute per source
and says how many it left out.

State ownership: one Auth per broker, used from the event loop only; its caches are
bounded dicts changed without an await between check and change.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from contextvars import ContextVar
from enum import Enum
from typing import TYPE_CHECKING

from broker.core import QUEUE, TEMP_QUEUE, TEMP_TOPIC, TOPIC, Address, Core
from broker.core.policy import wildcard_match
from broker.logs import LogLimiter
from broker.passwords import is_hashed, verify_password

if TYPE_CHECKING:
    from broker.config import AuthorizationEntry, AuthSettings

log = logging.getLogger("zonemq.auth")

READ, WRITE, ADMIN = "read", "write", "admin"
# ActiveMQ's words in its SecurityException texts, by operation.
_VERBS = {READ: "read from", WRITE: "write to", ADMIN: "create"}

THROTTLE_SOURCES = 10000
_ACL_CACHE = 10000

# The peer of the HTTP request being handled (aiohttp runs a connection's requests one
# at a time in its task, and SqsApp.handle sets this first): what a refusal logged
# without an explicit peer names (SQS and SNS authorization see only parameters).
REQUEST_PEER: ContextVar[str] = ContextVar("zonemq_request_peer", default="?")


class Login(Enum):
    """The outcome of a login attempt."""

    OK = "ok"
    INVALID = "invalid"
    THROTTLED = "throttled"


def exists(core: Core, address: Address) -> bool:
    """Whether the destination exists already (else using it creates it: admin)."""
    return address in (core.queues if address.is_queue else core.topics)


class LoginThrottle:
    """Failed logins per source address, bounded (see the module docstring)."""

    def __init__(
        self,
        max_failures: int,
        window: float,
        block_time: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_sources: int = THROTTLE_SOURCES,
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self.block_time = block_time
        self.clock = clock
        self.max_sources = max_sources
        # source -> [failures in this window, window start, blocked until]
        self._table: OrderedDict[str, list[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._table)

    def blocked(self, source: str) -> bool:
        entry = self._table.get(source)
        return entry is not None and entry[2] > self.clock()

    def failed(self, source: str) -> None:
        if self.max_failures <= 0:
            return
        now = self.clock()
        entry = self._table.get(source)
        if entry is None or (now - entry[1] > self.window and entry[2] <= now):
            entry = [0.0, now, 0.0]
            self._table[source] = entry
            while len(self._table) > self.max_sources:
                self._table.popitem(last=False)
        self._table.move_to_end(source)
        entry[0] += 1
        if entry[0] >= self.max_failures:
            entry[2] = now + self.block_time
            entry[0], entry[1] = 0.0, now + self.block_time

    def succeeded(self, source: str) -> None:
        self._table.pop(source, None)


class AuthorizationMap:
    """ActiveMQ's DefaultAuthorizationMap over ZoneMQ addresses, with a bounded cache."""

    def __init__(self, entries: tuple[AuthorizationEntry, ...]) -> None:
        self.rules: list[tuple[str, str, dict[str, frozenset[str]]]] = []
        self.temp: dict[str, frozenset[str]] | None = None
        for e in entries:
            acls = {READ: frozenset(e.read), WRITE: frozenset(e.write), ADMIN: frozenset(e.admin)}
            if e.temp:
                self.temp = acls
            else:
                self.rules.append((QUEUE if e.queue else TOPIC, e.queue or e.topic, acls))
        self.enabled = bool(entries)
        self._cache: dict[tuple[Address, str], frozenset[str] | None] = {}

    def acl(self, address: Address, op: str) -> frozenset[str] | None:
        """The groups allowed `op` on `address`; None: everyone (no map, or a temporary
        destination with no temp entry)."""
        key = (address, op)
        try:
            return self._cache[key]
        except KeyError:
            pass
        result: frozenset[str] | None
        if not self.enabled:
            result = None
        elif address.kind in (TEMP_QUEUE, TEMP_TOPIC):
            result = None if self.temp is None else self.temp[op]
        else:
            groups: set[str] = set()
            for kind, pattern, acls in self.rules:
                if kind == address.kind and wildcard_match(pattern, address.name):
                    groups |= acls[op]
            result = frozenset(groups)
        if len(self._cache) >= _ACL_CACHE:
            self._cache.clear()
        self._cache[key] = result
        return result


class Auth:
    """Users, groups, the authorization map and the login throttle of one broker."""

    def __init__(
        self, settings: AuthSettings, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.users = settings.users
        # Authentication is on when any user is configured.
        self.required = bool(settings.users)
        self.map = AuthorizationMap(settings.authorization)
        self.authorizing = self.map.enabled
        groups: dict[str, set[str]] = {u: set() for u in settings.users}
        for group, members in settings.groups.items():
            for member in members:
                groups.setdefault(member, set()).add(group)
        self._groups = {u: frozenset(g) for u, g in groups.items()}
        self.throttle = LoginThrottle(
            settings.max_login_failures,
            settings.login_failure_window,
            settings.login_block_time,
            clock=clock,
        )
        # SigV4 signs with the secret itself, so SQS needs it in the clear: a user's
        # `sqs_secrets` entry, else the password when it is stored plain.
        self.signing_secrets: dict[str, str] = {
            u: p for u, p in settings.users.items() if not is_hashed(p)
        }
        self.signing_secrets.update(settings.sqs_secrets)
        self._key = secrets.token_bytes(32)
        self._verified: dict[str, bytes] = {}
        self._allowed: dict[tuple[str, Address, str], bool] = {}
        self.limiter = LogLimiter(clock=clock)

    def summary(self) -> str:
        """The auth state in a few words, for the start banner."""
        if not self.required:
            users = "no users (anonymous access)"
        else:
            users = f"{len(self.users)} users, anonymous refused"
        entries = len(self.map.rules) + (self.map.temp is not None)
        authz = f"{entries} authorization entries" if entries else "no authorization map"
        return f"{users}, {authz}"

    def _refused(
        self,
        event: str,
        protocol: str,
        peer: str,
        user: str | None,
        reason: str,
        text: str,
        key: tuple[object, ...],
    ) -> None:
        """One rate-limited WARNING for a refusal (see the module docstring)."""
        suppressed = self.limiter.allow(key)
        if suppressed is None:
            return
        more = f" ({suppressed} similar suppressed)" if suppressed else ""
        log.warning(
            "%s%s",
            text,
            more,
            extra={
                "event": event,
                "protocol": protocol,
                "peer": peer,
                "user": user,
                "reason": reason,
                "suppressed": suppressed,
            },
        )

    def warn_plain(self) -> None:
        """One warning at start naming the users whose password is stored in plain."""
        plain = sorted(u for u, p in self.users.items() if not is_hashed(p))
        if plain:
            log.warning(
                "[auth] users: plain-text passwords for %s; store scrypt hashes instead "
                "(`zonemq passwd`)",
                ", ".join(plain),
            )

    # -- authentication -------------------------------------------------------------------

    def login(self, user: str | None, password: str | None, source: str, protocol: str) -> Login:
        """Check a login from `source` (a host address); failures are logged and
        throttled. With no users configured every login is OK."""
        if not self.required:
            return Login.OK
        if self.throttle.blocked(source):
            self._login_refused(protocol, source, user, "too many failed logins", "refused")
            return Login.THROTTLED
        if user is not None and password is not None and self._check(user, password):
            self.throttle.succeeded(source)
            return Login.OK
        self.throttle.failed(source)
        reason = "invalid credentials" if user is not None else "no credentials"
        self._login_refused(protocol, source, user, reason)
        return Login.INVALID

    def _login_refused(
        self, protocol: str, peer: str, user: str | None, reason: str, verb: str = "failed"
    ) -> None:
        # Not keyed by user: a spray of user names from one host is one key.
        self._refused(
            f"login_{verb}",
            protocol,
            peer,
            user,
            reason,
            f"{protocol} login {verb}: user {user!r} from {peer}: {reason}",
            ("login", protocol, peer, reason),
        )

    def _check(self, user: str, password: str) -> bool:
        stored = self.users.get(user)
        if stored is None:
            return False
        mac = hmac.digest(self._key, password.encode(), "sha256")
        seen = self._verified.get(user)
        if seen is not None and hmac.compare_digest(seen, mac):
            return True
        if not verify_password(stored, password):
            return False
        self._verified[user] = mac  # one entry per configured user at most
        return True

    def failed(self, user: str | None, source: str, protocol: str, why: str) -> None:
        """A failed login checked elsewhere (a SigV4 signature): logged and throttled."""
        if self.required:
            self.throttle.failed(source)
            self._login_refused(protocol, source, user, why)

    def groups(self, user: str) -> frozenset[str]:
        return self._groups.get(user, frozenset())

    # -- authorization --------------------------------------------------------------------

    def allowed(self, user: str, address: Address, op: str) -> bool:
        """Whether `user` may do `op` on `address` (cached per user, address, op)."""
        if not self.authorizing:
            return True
        key = (user, address, op)
        ok = self._allowed.get(key)
        if ok is None:
            acl = self.map.acl(address, op)
            ok = acl is None or not acl.isdisjoint(self.groups(user))
            if len(self._allowed) >= _ACL_CACHE:
                self._allowed.clear()
            self._allowed[key] = ok
        return ok

    def check(
        self,
        user: str,
        address: Address,
        op: str,
        protocol: str,
        *,
        created: bool = False,
        peer: str | None = None,
    ) -> str | None:
        """None if allowed, else ActiveMQ's denial text (and a log line). `created`: the
        operation would create the destination, which also needs admin. `peer`: the
        client's address (default: the HTTP request's, REQUEST_PEER)."""
        if not self.authorizing:
            return None
        if created and not self.allowed(user, address, ADMIN):
            op = ADMIN
        elif self.allowed(user, address, op):
            return None
        where = REQUEST_PEER.get() if peer is None else peer
        reason = f"{op} on {address}"
        self._refused(
            "denied",
            protocol,
            where,
            user,
            reason,
            f"{protocol}: user {user!r} denied {reason} (from {where})",
            # By host: each new connection from one client is not a new key.
            ("denied", protocol, where.rpartition(":")[0] or where, user),
        )
        return f"User {user} is not authorized to {_VERBS[op]}: {address}"
