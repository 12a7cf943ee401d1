"""AMQP 1.0 links onto the core: attach and detach (the link half of an AmqpConnection).

- A link the client receives on (our sender, an `OutLink`) is a core Subscription with
  ack mode individual, or auto when the link is pre-settled (snd-settle-mode settled,
  at-most-once: every transfer settled as sent, the message acked then, no disposition
  awaited). A source with distribution-mode copy browses: a snapshot of the queue,
  sent pre-settled as credit allows (no subscription).
- Settle modes in our attach: snd-settle-mode echoes the client's (settled, unsettled,
  mixed; mixed is sent unsettled), a browser's is settled; rcv-settle-mode echoes the
  client's on our senders (first and second both hold: we settle after the client's
  outcome) and is first on our receivers (the mode we use), as ActiveMQ's.
- A link the client sends on (our receiver, an `InLink`) routes to its target's
  destination, created on first use (temporary ones must exist); a null target is the
  anonymous relay (each message's `to` says where), a coordinator target the transaction
  controller (transactions.py).
- A dynamic source or target is a temporary queue (a temporary topic with the
  `temporary-topic` or `topic` capability) named after and owned by the connection, and
  deleted when its link closes or the connection ends.
- Authorization (broker.auth): a receiving link needs read on its source, a sending
  link write on its target, and admin too when that creates the destination (a dynamic
  node: the temp entry's admin); an anonymous relay is checked per transfer
  (deliveries.py). A denial is amqp:unauthorized-access with ActiveMQ's text.
- Source filters as ActiveMQ reads them, by descriptor (whatever their key): the JMS
  selector (`apache.org:selector-filter:string`, or its code 0x0000468C00000004),
  compiled once with the message's typed properties (no string conversion), and no-local
  (`apache.org:no-local-filter:list`); the broker's source echoes only these, so a client
  sees that any other filter was not applied.
- A topic source with terminus durability (configuration or unsettled-state; ActiveMQ
  looks at nothing else, not the expiry policy) is a durable subscription
  (broker/core/durable.py) keyed by the connection's container-id and the link's name,
  as ActiveMQ's AmqpSession.createSender: a detach keeps it, a detach with closed=true
  deletes it and its messages (AmqpSender.close). A null source is the JMS client's
  recovery of one by link name: the broker's source describes the subscription (its
  topic, durable, expiry never, copy, its filters), or the link is refused with
  amqp:not-found "Unknown subscription link: <name>".
- Refused with the spec's refusal (attach with a null terminus, then detach with the
  condition): a denial, an address that does not parse, a selector that does not parse
  (amqp:invalid-field, as ActiveMQ, naming the column), a second consumer of a durable
  subscription (amqp:internal-error, ActiveMQ's condition for its JMSException, "Durable
  consumer is in use for client: c and subscriptionName: n"); core errors through
  mapping.CORE_CONDITIONS.

Transfers and dispositions on these links are deliveries.py's.
"""

from __future__ import annotations

import contextlib
import itertools
from typing import Any

from proton import Array, Condition, Described, Endpoint, Event, Link, Terminus, symbol, ulong

from broker.auth import READ, WRITE, exists
from broker.core import (
    AUTO,
    INDIVIDUAL,
    TEMP_QUEUE,
    TEMP_TOPIC,
    TOPIC,
    Address,
    CoreError,
    DurableSub,
    Selector,
    SelectorError,
    Subscription,
    is_wildcard,
)
from broker.core import Message as CoreMessage
from broker.core.errors import INVALID
from broker.push import PushConnection
from broker.tcp import TcpListener
from protocols.amqp.mapping import (
    CAPABILITY_KINDS,
    CORE_CONDITIONS,
    MappingError,
    format_address,
    parse_composite,
)
from protocols.amqp.sasl import SaslServer

# Credit a producer's link gets, topped up as it is used (withheld while the destination
# is over its memory limit).
PRODUCER_CREDIT = 1000
# ActiveMQ's filter descriptors (AmqpSupport): a filter is known by its descriptor.
SELECTOR_FILTER = (symbol("apache.org:selector-filter:string"), ulong(0x0000468C00000004))
NO_LOCAL_FILTER = (symbol("apache.org:no-local-filter:list"), ulong(0x0000468C00000003))
_ACTIVE = Endpoint.LOCAL_ACTIVE
_LOCAL_UNINIT = Endpoint.LOCAL_UNINIT


def _data_object(data: Any) -> Any:
    """The value held by a terminus field's `proton.Data` (None when empty)."""
    if data is None:
        return None
    data.rewind()
    return data.get_object() if data.next() else None


def _source_filters(filters: Any) -> tuple[Selector | None, bool, dict[Any, Any]]:
    """The selector and no-local of a source's filter set, and the filters applied (what
    the broker's source echoes). A selector that does not parse is Refused."""
    selector = None
    no_local = False
    supported: dict[Any, Any] = {}
    if not isinstance(filters, dict):
        return selector, no_local, supported
    for key, value in filters.items():
        if not isinstance(value, Described):
            continue
        if value.descriptor in SELECTOR_FILTER and selector is None:
            try:
                selector = Selector(str(value.value))
            except SelectorError as exc:
                raise Refused("amqp:invalid-field", str(exc)) from None
            supported[key] = value
        elif value.descriptor in NO_LOCAL_FILTER:
            no_local = True
            supported[key] = value
    return selector, no_local, supported


class Refused(Exception):
    """An attach or transfer we refuse with an AMQP error condition."""

    def __init__(self, condition: str, description: str) -> None:
        super().__init__(description)
        self.condition = condition
        self.description = description


class OutLink:
    """A link we send on: one core subscription (or a queue browser)."""

    __slots__ = (
        "address",
        "browse",
        "durable",
        "dynamic",
        "impl",
        "link",
        "presettled",
        "selector",
        "sub",
        "tags",
        "unacked",
    )

    def __init__(self, link: Link, address: Address, *, dynamic: bool, presettled: bool) -> None:
        self.link = link
        # The engine's pn_link_t: the per-message paths call proton's C API on it directly
        # rather than through Link/Delivery wrapper objects (one per call, and costly).
        self.impl = link._impl
        self.address = address
        self.dynamic = dynamic
        self.presettled = presettled
        self.sub: Subscription | None = None
        # A browser's snapshot, sent as credit allows; None for a consumer.
        self.browse: list[CoreMessage | int] | None = None
        # A browser's selector (a consumer's is its subscription's).
        self.selector: Selector | None = None
        # The (client id, name) of the durable subscription this link consumes.
        self.durable: tuple[str, str] | None = None
        self.tags = itertools.count(1)
        # Unsettled deliveries (their pn_delivery_t) → core message id. Popped before the
        # delivery is settled, so a freed delivery's address never stays here.
        self.unacked: dict[Any, str] = {}


class InLink:
    """A link we receive on: a fixed destination, the anonymous relay or a coordinator."""

    __slots__ = (
        "address",
        "blocked",
        "coordinator",
        "dynamic",
        "impl",
        "link",
        "partial",
        "parts",
        "since",
    )

    def __init__(
        self, link: Link, address: Address | None, *, dynamic: bool, coordinator: bool
    ) -> None:
        self.link = link
        self.impl = link._impl
        self.address = address
        # A composite target's parts (`address` is the first); None: one destination.
        self.parts: tuple[Address, ...] | None = None
        self.dynamic = dynamic
        self.coordinator = coordinator
        # Credit is withheld while the destination is over its memory limit.
        self.blocked = False
        # Bytes proton holds of the delivery whose transfer frames have not all come yet
        # (0: none), and since when (loop time): see AmqpDeliveries._hold_partial.
        self.partial = 0
        self.since = 0.0


class AmqpLinks(PushConnection):
    """The links of one AMQP connection and their attach and detach (see the module
    docstring); AmqpConnection is this plus deliveries, transactions and the engine."""

    sasl: SaslServer  # AmqpConnection's: who logged in (`sasl.user`)

    def __init__(self, listener: TcpListener[Any]) -> None:
        super().__init__(listener)
        self.out_links: dict[Link, OutLink] = {}
        self.in_links: dict[Link, InLink] = {}
        # Both kinds by their pn_link_t, for events handled without wrapper objects.
        self.by_impl: dict[Any, OutLink | InLink] = {}
        self._temp_ids = itertools.count(1)

    # -- PushConnection -----------------------------------------------------------------

    def _subscriptions(self) -> list[Subscription]:
        return [out.sub for out in self.out_links.values() if out.sub is not None]

    def _may_resume(self, sub: Subscription) -> bool:
        out: OutLink = sub.tag  # type: ignore[assignment]
        return bool(out.link.credit > 0)

    def _take_subscriptions(self) -> list[Subscription]:
        outs, self.out_links = self.out_links, {}
        self.by_impl = {}
        self.in_links = {}
        subs = []
        for out in outs.values():
            out.unacked.clear()
            if out.sub is not None:
                subs.append(out.sub)
                out.sub = None
        return subs

    # -- attach ---------------------------------------------------------------------------

    def _on_link_open(self, event: Event) -> None:
        link = event.link
        if not link.state & _LOCAL_UNINIT:
            return
        try:
            if link.is_sender:
                self._attach_sender(link)
            else:
                self._attach_receiver(link)
        except (Refused, MappingError) as exc:
            self._refuse(link, exc.condition, exc.description)
        except CoreError as exc:
            self._refuse(link, CORE_CONDITIONS.get(exc.code, "amqp:internal-error"), exc.message)

    def _refuse(self, link: Link, condition: str, description: str) -> None:
        # The spec's refusal: attach with a null terminus, then detach with the error.
        if link.is_sender:
            link.source.type = Terminus.UNSPECIFIED
            link.target.copy(link.remote_target)
        else:
            link.target.type = Terminus.UNSPECIFIED
            link.source.copy(link.remote_source)
        link.open()
        link.condition = Condition(condition, description)
        link.close()

    def _kind_from_capabilities(self, terminus: Terminus) -> str | None:
        caps = _data_object(terminus.capabilities)
        if caps is None:
            return None
        if isinstance(caps, Array):
            caps = caps.elements
        for cap in caps if isinstance(caps, list | tuple) else [caps]:
            kind = CAPABILITY_KINDS.get(str(cap))
            if kind is not None:
                return kind
        return None

    def _authorize(self, address: Address, op: str, *, created: bool) -> None:
        """Raise Refused (amqp:unauthorized-access, ActiveMQ's text) unless the user may
        `op` on `address` (and admin when `created`)."""
        auth = self.listener.auth
        if auth.authorizing:
            denied = auth.check(
                self.sasl.user, address, op, "AMQP", created=created, peer=self.peer
            )
            if denied is not None:
                raise Refused("amqp:unauthorized-access", denied)

    def _dynamic_address(self, terminus: Terminus, op: str) -> Address:
        kind = self._kind_from_capabilities(terminus)
        temp_kind = TEMP_TOPIC if kind in (TOPIC, TEMP_TOPIC) else TEMP_QUEUE
        address = Address(temp_kind, f"{self._temp_prefix}{next(self._temp_ids)}")
        self._authorize(address, op, created=True)
        self.core.create_temporary(address, self)
        return address

    def _attach_sender(self, link: Link) -> None:
        remote = link.remote_source
        dynamic = remote.dynamic
        client_id = link.connection.remote_container or self.id
        recovered: DurableSub | None = None
        source: Address | tuple[Address, ...]
        parts: tuple[Address, ...]
        if remote.type == Terminus.UNSPECIFIED:
            recovered = self.core.durables.find(client_id, link.name)
            if recovered is None:
                raise Refused("amqp:not-found", f"Unknown subscription link: {link.name}")
            source = recovered.address
            parts = recovered.parts
            address = parts[0]
            for part in parts:
                fresh = not exists(self.core, part) and not is_wildcard(part.name)
                self._authorize(part, READ, created=fresh)
            selector, no_local = recovered.selector, recovered.no_local
            supported: dict[Any, Any] = {}
            if no_local:
                supported[NO_LOCAL_FILTER[0]] = Described(NO_LOCAL_FILTER[0], [])
            if selector is not None:
                supported[SELECTOR_FILTER[0]] = Described(SELECTOR_FILTER[0], selector.text)
        elif dynamic:
            address = source = self._dynamic_address(remote, READ)
            parts = (address,)
        else:
            if remote.address is None:
                raise Refused("amqp:invalid-field", "a receiver needs a source address")
            source = parse_composite(remote.address, self._kind_from_capabilities(remote))
            parts = source if type(source) is tuple else (source,)
            for part in parts:
                # A wildcard subscription creates nothing.
                fresh = not exists(self.core, part) and not is_wildcard(part.name)
                self._authorize(part, READ, created=fresh)
            address = parts[0]
        if recovered is None:
            selector, no_local, supported = _source_filters(_data_object(remote.filter))
        durable = None
        if recovered is not None or (
            address.kind == TOPIC and remote.durability != Terminus.NONDURABLE
        ):
            durable = (client_id, link.name)
        browse = remote.distribution_mode == Terminus.DIST_MODE_COPY and address.is_queue
        if browse and (len(parts) > 1 or is_wildcard(address.name)):
            raise Refused("amqp:not-implemented", "cannot browse a composite or wildcard")
        presettled = link.remote_snd_settle_mode == Link.SND_SETTLED or browse
        out = OutLink(link, address, dynamic=dynamic, presettled=presettled)
        if browse:
            out.browse = list(reversed(self.core.queue(address, create=False).entries()))
            out.selector = selector
        else:
            try:
                out.sub = self.core.subscribe(
                    source,
                    self,
                    ack_mode=AUTO if presettled else INDIVIDUAL,
                    no_local=no_local,
                    origin=self.id,
                    tag=out,
                    paused=True,
                    selector=selector,
                    durable=durable,
                )
            except CoreError as exc:
                if durable is None or exc.code != INVALID:
                    raise
                # The subscription's consumer is attached elsewhere.
                raise Refused("amqp:internal-error", exc.message) from None
            out.durable = durable
        self.out_links[link] = out
        self.by_impl[out.impl] = out
        if recovered is not None:
            link.source.type = Terminus.SOURCE
            link.source.address = ",".join(format_address(p) for p in parts)
            link.source.durability = Terminus.DELIVERIES
            link.source.expiry_policy = Terminus.EXPIRE_NEVER
            link.source.distribution_mode = Terminus.DIST_MODE_COPY
        else:
            link.source.copy(remote)
        link.source.filter.clear()
        if supported:
            link.source.filter.put_object(supported)
        if dynamic:
            link.source.address = format_address(address)
        link.target.copy(link.remote_target)
        # A sender's snd-settle-mode is the mode it uses: the client's (a browser's
        # transfers are always settled); rcv-settle-mode the one it asks of the client,
        # which either mode satisfies (we settle once the client's outcome came).
        link.snd_settle_mode = Link.SND_SETTLED if browse else link.remote_snd_settle_mode
        link.rcv_settle_mode = link.remote_rcv_settle_mode
        link.open()

    def _attach_receiver(self, link: Link) -> None:
        remote = link.remote_target
        coordinator = remote.type == Terminus.COORDINATOR
        address: Address | None = None
        parts: tuple[Address, ...] = ()
        dynamic = False
        if coordinator:
            pass
        elif remote.dynamic:
            dynamic = True
            address = self._dynamic_address(remote, WRITE)
        elif remote.address is not None:
            target = parse_composite(remote.address, self._kind_from_capabilities(remote))
            parts = target if type(target) is tuple else (target,)
            for part in parts:
                self._authorize(part, WRITE, created=not exists(self.core, part))
                # Destinations are created on first use (a wildcard is refused there);
                # temporary ones must exist.
                if part.is_queue:
                    self.core.queue(part)
                else:
                    self.core.topic(part)
            address = parts[0]
        inl = InLink(link, address, dynamic=dynamic, coordinator=coordinator)
        if len(parts) > 1:
            inl.parts = parts
        self.in_links[link] = inl
        self.by_impl[inl.impl] = inl
        link.target.copy(remote)
        if dynamic and address is not None:
            link.target.address = format_address(address)
        link.source.copy(link.remote_source)
        # snd-settle-mode echoes the client's; rcv-settle-mode is the mode we use, first
        # (we settle with our outcome, as ActiveMQ, whatever the client asked).
        link.snd_settle_mode = link.remote_snd_settle_mode
        link.rcv_settle_mode = Link.RCV_FIRST
        link.max_message_size = self.settings.max_message_size
        link.open()
        link.flow(PRODUCER_CREDIT)
        if not dynamic:
            self.core.producer_added(inl, address, owner=self)

    # -- detach ---------------------------------------------------------------------------

    def _on_link_close(self, event: Event) -> None:
        link = event.link
        if link in self.out_links:
            self._drop_out(link, closed=event.type == Event.LINK_REMOTE_CLOSE)
        elif link in self.in_links:
            self._drop_in(link)
        if link.state & _ACTIVE:
            if event.type == Event.LINK_REMOTE_DETACH:
                link.detach()
            else:
                link.close()

    def _drop_out(self, link: Link, *, closed: bool = False) -> None:
        out = self.out_links.pop(link)
        self.by_impl.pop(out.impl, None)
        out.unacked.clear()
        if out.sub is not None:
            out.sub.close()
            out.sub = None
        if closed and out.durable is not None:
            # Closed, not just detached: the durable subscription goes (AmqpSender.close).
            # Already gone is fine: what the client asked for holds.
            with contextlib.suppress(CoreError):
                self.core.remove_subscription(*out.durable)
        if out.dynamic:
            self.core.delete(out.address)

    def _drop_in(self, link: Link) -> None:
        inl = self.in_links.pop(link)
        self.by_impl.pop(inl.impl, None)
        self.core.producer_removed(inl)
        if inl.dynamic and inl.address is not None:
            self.core.delete(inl.address)
