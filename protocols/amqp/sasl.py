"""The server side of AMQP 1.0 SASL (section 5.3), sans-IO: bytes in, bytes out.

Why not `proton.SASL`: without Cyrus SASL (which python-qpid-proton's wheel build only
links when libsasl2 happens to be installed) proton's engine offers only ANONYMOUS and
EXTERNAL to a client and has no hook for checking a PLAIN password. This layer is small
enough to own: it reads the SASL protocol header and one sasl-init frame, answers
sasl-mechanisms and sasl-outcome, and hands every byte after the exchange (the client's
AMQP header onwards) to proton's Transport. The AMQP type system is proton's (`Data`).

Mechanisms: with no users configured, ANONYMOUS and PLAIN (any credentials; ActiveMQ
without an authentication plugin behaves alike); with users, PLAIN only, checked by the
`check` callable the connection gives (broker.auth: hashes, the login throttle), and
EXTERNAL too when the connection's verified TLS client certificate maps to a user
(`external`: that user, ``[tls] cert_users``). A client that sends the plain AMQP
header instead of the SASL one is `skipped`: the caller gives its bytes to proton,
which refuses it if auth is required.

Invariants: at most one frame of `MAX_SASL_FRAME` bytes is buffered; after `done`,
`failed` or `skipped` the object takes no more input.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping

from proton import UNDESCRIBED, Array, Data, Described, symbol, ubyte, ulong

SASL_HEADER = b"AMQP\x03\x01\x00\x00"
AMQP_HEADER = b"AMQP\x00\x01\x00\x00"
# Frames before authentication are small (a sasl-init is a few hundred bytes).
MAX_SASL_FRAME = 65536

_MECHANISMS = 0x40
_INIT = 0x41
_OUTCOME = 0x44
_INIT_NAME = "amqp:sasl-init:list"

# sasl-outcome codes (AMQP 1.0 5.3.3.6).
OK = 0
AUTH = 1
SYS_PERM = 3

WAITING, NEGOTIATING, DONE, FAILED, SKIPPED = (
    "waiting",
    "negotiating",
    "done",
    "failed",
    "skipped",
)


def _frame(descriptor: int, fields: list[object]) -> bytes:
    body = Data()
    body.put_object(Described(ulong(descriptor), fields))
    payload = body.encode()
    # size, doff=2 (8-byte header), type=1 (SASL), channel ignored.
    return struct.pack(">IBBH", 8 + len(payload), 2, 1, 0) + payload


class SaslServer:
    """One connection's SASL negotiation (see module docstring)."""

    def __init__(
        self,
        users: Mapping[str, str],
        check: Callable[[str, str], str],
        external: Callable[[], str | None] = lambda: None,
    ) -> None:
        self.users = users
        self.external = external
        # (user, password) -> "ok", "invalid" or "throttled" (broker.auth.Login values).
        self.check = check
        self.mechanisms = ("PLAIN",) if users else ("ANONYMOUS", "PLAIN")
        self.state = WAITING
        self.user = ""
        # Why negotiation failed, for the log; bytes that follow a finished exchange.
        self.error = ""
        self.leftover = b""
        self._buf = b""
        self._out: list[bytes] = []

    def buffered(self) -> int:
        """Bytes of an incomplete frame (or protocol header) held."""
        return len(self._buf)

    def data_to_send(self) -> bytes:
        out = b"".join(self._out)
        self._out.clear()
        return out

    def feed(self, data: bytes) -> None:
        """Consume input; afterwards `state` says what the caller must do next."""
        self._buf += data
        if self.state == WAITING:
            head = self._buf[:8]
            if not SASL_HEADER.startswith(head):
                if self.users and head.startswith(b"AMQP"):
                    # Authentication is required: answer with the header we insist on
                    # and close (AMQP 1.0 2.2, protocol negotiation).
                    self.error = "client skipped authentication"
                    self._out.append(SASL_HEADER)
                    self.state = FAILED
                    return
                # Not SASL (plain AMQP or garbage): proton's header detection takes over.
                self.state = SKIPPED
                self.leftover, self._buf = self._buf, b""
                return
            if len(head) < 8:
                return
            self._buf = self._buf[8:]
            if self.external() is not None:
                # Known only once the TLS handshake is done, so decided here, not at init.
                self.mechanisms = ("EXTERNAL", *self.mechanisms)
            self._out.append(SASL_HEADER)
            self._out.append(
                _frame(
                    _MECHANISMS, [Array(UNDESCRIBED, Data.SYMBOL, *map(symbol, self.mechanisms))]
                )
            )
            self.state = NEGOTIATING
        if self.state == NEGOTIATING:
            self._read_init()

    def _read_init(self) -> None:
        buf = self._buf
        if len(buf) < 8:
            return
        size, doff, ftype, _channel = struct.unpack_from(">IBBH", buf)
        if size > MAX_SASL_FRAME or size < 8 or doff < 2 or doff * 4 > size or ftype != 1:
            self._fail(SYS_PERM, f"bad SASL frame header {buf[:8]!r}")
            return
        if len(buf) < size:
            return
        payload = buf[doff * 4 : size]
        self.leftover, self._buf = buf[size:], b""
        body = Data()
        try:
            body.decode(payload)
            init = body.get_object()
        except Exception:  # proton raises DataException and friends on garbage
            self._fail(SYS_PERM, "undecodable SASL frame")
            return
        descriptor = getattr(init, "descriptor", None)
        if descriptor != _INIT and descriptor != _INIT_NAME:
            self._fail(SYS_PERM, f"expected sasl-init, got {descriptor!r}")
            return
        if not isinstance(init.value, list | tuple):
            # A descriptor on a scalar (fuzzing found it): not a sasl-init list.
            self._fail(SYS_PERM, "malformed sasl-init")
            return
        fields = [*init.value, None, None]
        mechanism, response = str(fields[0] or ""), fields[1] or b""
        if isinstance(response, memoryview):  # proton's Data hands binary out as a view
            response = bytes(response)
        if mechanism not in self.mechanisms:
            self._fail(AUTH, f"mechanism {mechanism!r} not offered")
            return
        if mechanism == "PLAIN":
            if not isinstance(response, bytes):
                self._fail(AUTH, "PLAIN without a response")
                return
            parts = response.split(b"\x00")
            if len(parts) != 3:
                self._fail(AUTH, "malformed PLAIN response")
                return
            user = parts[1].decode("utf-8", "replace")
            password = parts[2].decode("utf-8", "replace")
            outcome = self.check(user, password) if self.users else "ok"
            if outcome == "throttled":
                self._fail(AUTH, f"too many failed logins (user [{user}])")
                return
            if outcome != "ok":
                self._fail(AUTH, f"user name [{user}] or password is invalid")
                return
            self.user = user
        elif mechanism == "EXTERNAL":
            user = self.external()
            if user is None:
                self._fail(AUTH, "EXTERNAL without a mapped client certificate")
                return
            self.user = user
        else:
            self.user = "anonymous"
        self._out.append(_frame(_OUTCOME, [ubyte(OK)]))
        self.state = DONE

    def _fail(self, code: int, why: str) -> None:
        self.error = why
        self._out.append(_frame(_OUTCOME, [ubyte(code)]))
        self.state = FAILED
        self._buf = b""
        self.leftover = b""
