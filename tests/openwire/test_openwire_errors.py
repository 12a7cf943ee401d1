"""Bad OpenWire input ends that connection only; logins; crash safety with the JMS client;
messages crossing to and from STOMP."""

from __future__ import annotations

import re
import socket
import struct
import subprocess
from collections.abc import Callable

from protocols.openwire.codec import commands as c
from protocols.openwire.codec import loose
from protocols.openwire.codec.cache import Cache
from tests.conftest import WAIT, BrokerThread, Client, RawClient
from tests.daemon.test_crash import Brokers, brokers  # noqa: F401 (the fixture)
from tests.openwire.conftest import Jms, classpath, url
from tests.openwire.test_jms import one, values

OPENWIRE = re.compile(r"openwire listener on (\S+):(\d+)")


class RawOpenWire:
    """A plain socket that has read the broker's WireFormatInfo."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        self.reader = loose.FrameReader(1 << 20)
        self.pending: list[bytes] = []
        # Set once a WireFormatInfo offering the marshalling cache has gone out.
        self.cache: Cache | None = None
        first = self.command()
        assert isinstance(first, c.WireFormatInfo), first
        self.info = first

    def command(self) -> object:
        while not self.pending:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.pending.extend(self.reader.feed(chunk))
        return loose.decode(self.pending.pop(0), self.cache)

    def closed(self) -> bool:
        self.sock.settimeout(WAIT)
        try:
            while self.sock.recv(65536):
                pass
            return True
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False


def handshake(port: int) -> RawOpenWire:
    raw = RawOpenWire(port)
    raw.sock.sendall(loose.encode(c.WireFormatInfo(properties={"MaxInactivityDuration": 0})))
    return raw


def test_broker_offers_loose_encoding_version_12(ow_broker: BrokerThread) -> None:
    raw = RawOpenWire(ow_broker.broker.port("openwire"))
    props = raw.info.properties or {}  # type: ignore[attr-defined]
    assert raw.info.version == 12  # type: ignore[attr-defined]
    assert props["TightEncodingEnabled"] is False and props["CacheEnabled"] is True
    assert props["CacheSize"] == ("int", 1024)
    assert props["MaxFrameSize"] == 104857600


def test_bad_input_closes_that_connection_and_loses_nothing(
    jms: Jms, ow_broker: BrokerThread
) -> None:
    # A stored message and a JMS client connected before the bad ones.
    jms.run(url(ow_broker), "send", "ow.bad", "1")
    port = ow_broker.broker.port("openwire")
    # Garbage where WireFormatInfo's magic should be.
    raw = RawOpenWire(port)
    raw.sock.sendall(struct.pack(">iB", 9, 1) + b"NotActiv")
    assert raw.closed()
    # A frame larger than the limit before login, refused on its size prefix alone.
    raw = handshake(port)
    raw.sock.sendall(struct.pack(">i", 1 << 20))
    assert raw.closed()
    # An unknown data type after the handshake.
    raw = handshake(port)
    raw.sock.sendall(struct.pack(">iB", 1, 99))
    assert raw.closed()
    # A command before WireFormatInfo.
    raw = RawOpenWire(port)
    raw.sock.sendall(loose.encode(c.ConnectionInfo(connection_id=c.ConnectionId("ID:x"))))
    assert raw.closed()
    # A truncated ConnectionInfo (its length says more than it holds).
    raw = handshake(port)
    body = loose.encode(c.ConnectionInfo(connection_id=c.ConnectionId("ID:x")))[4:]
    raw.sock.sendall(struct.pack(">i", len(body) - 3) + body[:-3])
    assert raw.closed()
    # Everyone else is fine and the stored message is still there.
    out = jms.run(url(ow_broker), "receive", "ow.bad", "1")
    assert values(out, "got") == ["m0"]


def _session_info(index: int, name: str) -> bytes:
    """A SessionInfo frame (the marshalling cache on) whose session id is new at `index`."""
    raw = name.encode()
    body = b"\x04\x00\x00\x00\x01\x00" + b"\x01" + struct.pack(">h", index)
    body += b"\x01\x79\x01" + struct.pack(">H", len(raw)) + raw + struct.pack(">q", 1)
    return struct.pack(">i", len(body)) + body


def test_bad_marshalling_cache_references_close_that_connection(
    jms: Jms, ow_broker: BrokerThread
) -> None:
    jms.run(url(ow_broker), "send", "ow.badcache", "1")
    port = ow_broker.broker.port("openwire")
    offer = {"MaxInactivityDuration": 0, "CacheEnabled": True, "CacheSize": ("int", 64)}
    # A ConnectionInfo whose connection id refers to cache index `index`: 63 is inside
    # the negotiated cache (64 entries; nothing stored there, so no id: answered), 64
    # is outside it.
    template = loose.encode(c.ConnectionInfo(command_id=1, response_required=True), cached=True)
    assert template[10:14] == b"\x01\xff\xff\x00"  # new, not cached, absent
    for index, accepted in ((63, True), (64, False)):
        raw = RawOpenWire(port)
        raw.sock.sendall(loose.encode(c.WireFormatInfo(properties=offer)))
        raw.cache = Cache(64, 1 << 20)
        body = template[4:10] + b"\x00" + struct.pack(">h", index) + template[14:]
        raw.sock.sendall(struct.pack(">i", len(body)) + body)
        if accepted:
            assert isinstance(raw.command(), c.BrokerInfo)
            assert isinstance(raw.command(), c.Response)
        else:
            assert raw.closed()
    # Cached structures past the connection's byte budget (1 MiB), after a login: ten
    # 60 kB session ids are held (a KeepAliveInfo is still answered), twenty are not.
    raw = RawOpenWire(port)
    raw.sock.sendall(loose.encode(c.WireFormatInfo(properties=offer)))
    info = c.ConnectionInfo(connection_id=c.ConnectionId("ID:cache"), command_id=1)
    raw.sock.sendall(loose.encode(info, cached=True))
    raw.cache = Cache(64, 1 << 20)
    for index in range(10):
        raw.sock.sendall(_session_info(index, "x" * 60000))
    raw.sock.sendall(loose.encode(c.KeepAliveInfo(response_required=True), cached=True))
    assert isinstance(raw.command(), c.BrokerInfo)
    assert isinstance(raw.command(), c.KeepAliveInfo)
    for index in range(10, 20):
        try:
            raw.sock.sendall(_session_info(index, "x" * 60000))
        except OSError:
            break
    assert raw.closed()
    # A client that uses the cache properly is served (the JMS client does) and the
    # stored message is still there.
    out = jms.run(url(ow_broker), "receive", "ow.badcache", "1")
    assert values(out, "got") == ["m0"]


def test_wrong_password_is_a_jms_security_exception(
    jms: Jms, broker_factory: Callable[..., BrokerThread]
) -> None:
    b = broker_factory(
        **{
            "listeners.openwire.enabled": True,
            "auth.users": {"alice": "a"},
        }
    )
    out = jms.run(url(b), "login", env={"OW_USER": "alice", "OW_PASSWORD": "wrong"})
    assert one(out, "error") == "JMSSecurityException:User name [alice] or password is invalid."
    out = jms.run(url(b), "login", env={"OW_USER": "alice", "OW_PASSWORD": "a"})
    assert one(out, "connected") == "true"


def test_messages_cross_to_and_from_stomp(
    jms: Jms, ow_broker: BrokerThread, connect: Callable[..., Client]
) -> None:
    out = jms.run(url(ow_broker), "send", "ow.cross", "2")
    assert values(out, "acked") == ["m0", "m1"]
    client = connect(port=ow_broker.stomp_port)
    client.conn.subscribe("/queue/ow.cross", id="s", ack="auto")
    first = client.listener.messages.get(timeout=WAIT)
    second = client.listener.messages.get(timeout=WAIT)
    assert (first.body, second.body) == ("m0", "m1")
    assert first.headers["n"] == "0" and first.headers["persistent"] == "true"
    # The JMS id is kept beside the core's own (as for AMQP producers).
    assert first.headers["JMS_AMQP_MessageId"].startswith("ID:")
    # Without content-length a STOMP frame is a TextMessage, with one a BytesMessage
    # (stomp.py always adds one), as in ActiveMQ.
    raw = RawClient(ow_broker.stomp_port)
    raw.connect()
    raw.send(b"SEND\ndestination:/queue/ow.back\ncolor:red\n\nfrom stomp\x00")
    raw.send(b"SEND\ndestination:/queue/ow.back\nreceipt:r\n\n\x00")
    assert raw.frame().startswith(b"RECEIPT")
    client.conn.send("/queue/ow.back", "bytes")
    client.sync()
    out = jms.run(url(ow_broker), "receive", "ow.back", "3")
    assert values(out, "got") == ["from stomp", "", "bytes:[98, 121, 116, 101, 115]"]


def test_acknowledged_sends_survive_sigkill(jms: Jms, brokers: Brokers) -> None:  # noqa: F811
    env = {"ZONEMQ_LISTENERS__OPENWIRE__ENABLED": "true"}
    first = brokers.start(**env)
    port = int(first.wait_for(OPENWIRE).group(2))
    sender = subprocess.Popen(
        [
            "java",
            "-cp",
            classpath(jms.classes),
            "Scenarios",
            f"tcp://127.0.0.1:{port}",
            "send",
            "ow.crash",
            "100000",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    acked: list[str] = []
    assert sender.stdout is not None
    for line in sender.stdout:
        if line.startswith("acked="):
            acked.append(line.strip().split("=", 1)[1])
            if len(acked) == 200:
                break
    first.kill()  # under load: the sender is mid-stream
    sender.kill()
    sender.wait(WAIT)
    second = brokers.start(**env)
    port = int(second.wait_for(OPENWIRE).group(2))
    assert second.recovered >= len(acked)
    out = jms.run(f"tcp://127.0.0.1:{port}", "receive", "ow.crash", str(second.recovered))
    got = {v.rstrip("*") for v in values(out, "got")}
    assert set(acked) <= got


def test_half_sent_frames_are_bounded_across_connections(
    jms: Jms, broker_factory: Callable[..., BrokerThread]
) -> None:
    b = broker_factory(
        **{"listeners.openwire.enabled": True, "listeners.openwire.max_partial_bytes": 100000}
    )
    port = b.broker.port("openwire")
    first = handshake(port)
    first.sock.sendall(struct.pack(">i", 60000) + b"\x0a" + b"\x00" * 59000)
    second = handshake(port)
    second.sock.sendall(struct.pack(">i", 60000) + b"\x0a" + b"\x00" * 59000)
    # The second would take the listener past its budget: it goes, the first stays.
    assert second.closed()
    first.sock.sendall(b"\x00" * 999)  # finishes the first's frame: a bad KeepAliveInfo
    assert first.closed()
    out = jms.run(url(b), "send", "ow.partial", "1")
    assert values(out, "acked") == ["m0"]
