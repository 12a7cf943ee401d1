"""`zonemq import-activemq-xml FILE`: an activemq.xml (Spring XML, namespaced) as ZoneMQ
TOML, and the list of what could not be translated, each unknown element or attribute
by name. Translated: `<destinations>` (to [[queues]] / [[topics]]), policyEntries (to
[[destinations.policies]]), the authorization map and simpleAuthenticationPlugin users
(to [auth]), STOMP and AMQP transport connectors (to [listeners.*]), the broker's name,
advisorySupport and schedulerSupport, storeUsage and sendFailIfNoSpace. `${name}`
placeholders are replaced from `props` (`-D name=value`); one left unresolved is
reported and its attribute dropped (a password is kept as written, reported, so the
user and its groups stay whole)."""

from __future__ import annotations

import re
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

from broker.config_show import toml_key, toml_value

_SIZE = re.compile(r"\s*(\d+)\s*(b|kb|mb|gb)?\s*", re.IGNORECASE)
_UNITS = {None: 1, "b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3}
_PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
# Spring's own beans that change nothing a broker does (the placeholder configurer).
_HARMLESS_BEANS = ("PropertyPlaceholderConfigurer",)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


class Translation:
    """The TOML tables built from one activemq.xml, and what was left out."""

    def __init__(self, props: Mapping[str, str]) -> None:
        self.props = props
        self.notes: list[str] = []
        self.broker: dict[str, Any] = {}
        self.destinations: dict[str, Any] = {}
        self.listeners: dict[str, dict[str, Any]] = {}
        self.policies: list[dict[str, Any]] = []
        self.queues: list[str] = []
        self.topics: list[str] = []
        self.users: dict[str, str] = {}
        self.groups: dict[str, list[str]] = {}
        self.authorization: list[dict[str, Any]] = []

    # -- helpers ---------------------------------------------------------------------------

    def note(self, text: str) -> None:
        self.notes.append(text)

    def attrs(self, el: ET.Element, where: str, known: tuple[str, ...]) -> dict[str, str]:
        """`el`'s attributes in `known` (placeholders resolved); the others reported."""
        out: dict[str, str] = {}
        for name, value in el.attrib.items():
            name = _local(name)
            if name not in known:
                self.note(f"{where}: attribute {name}={value!r} not translated")
                continue
            resolved = self.resolve(value, f"{where}@{name}", keep=name == "password")
            if resolved is not None:
                out[name] = resolved
        return out

    def resolve(self, value: str, where: str, *, keep: bool = False) -> str | None:
        missing = [m for m in _PLACEHOLDER.findall(value) if m not in self.props]
        if missing:
            self.note(
                f"{where}: placeholder ${{{missing[0]}}} unresolved (-D {missing[0]}=...)"
                + ("; kept as written" if keep else "; dropped")
            )
            if not keep:
                return None
        return _PLACEHOLDER.sub(lambda m: self.props.get(m.group(1), m.group(0)), value)

    def unknown(self, el: ET.Element, where: str) -> None:
        self.note(f"{where}/{_local(el.tag)}: element not translated")

    def number(self, text: str, where: str, *, size: bool = False) -> int | None:
        match = _SIZE.fullmatch(text) if size else re.fullmatch(r"\s*(-?\d+)\s*", text)
        if match is None:
            self.note(f"{where}: {text!r} is not a {'size' if size else 'number'}")
            return None
        unit = match.group(2).lower() if size and match.group(2) else None
        return int(match.group(1)) * _UNITS[unit]

    # -- the document ----------------------------------------------------------------------

    def document(self, root: ET.Element) -> None:
        brokers = [root] if _local(root.tag) == "broker" else []
        for el in root if not brokers else ():
            tag = _local(el.tag)
            if tag == "broker":
                brokers.append(el)
            elif tag == "bean" and el.get("class", "").endswith(_HARMLESS_BEANS):
                continue
            elif tag == "bean":
                self.note(f"beans/bean {el.get('class', '')}: not translated")
            else:
                self.unknown(el, _local(root.tag))
        if not brokers:
            self.note("no <broker> element found")
        for broker in brokers[:1]:
            self.broker_element(broker)
        for extra in brokers[1:]:
            self.note(f"a second <broker> ({extra.get('brokerName', '')}) not translated")

    def broker_element(self, el: ET.Element) -> None:
        a = self.attrs(
            el,
            "broker",
            (
                "brokerName",
                "advisorySupport",
                "schedulerSupport",
                "schedulePeriodForDestinationPurge",
            ),
        )
        period = a.get("schedulePeriodForDestinationPurge")
        if (
            period is not None
            and (n := self.number(period, "broker@schedulePeriodForDestinationPurge")) is not None
        ):
            self.destinations["inactive_purge_period"] = n / 1000  # ms -> s
        if "brokerName" in a:
            self.broker["name"] = a["brokerName"]
        for attr, key in (
            ("advisorySupport", "advisory_support"),
            ("schedulerSupport", "scheduler_support"),
        ):
            if attr in a:
                self.broker[key] = a[attr].strip().lower() == "true"
        handlers = {
            "destinations": self.declared,
            "destinationPolicy": self.destination_policy,
            "plugins": self.plugins,
            "transportConnectors": self.connectors,
            "systemUsage": self.system_usage,
        }
        for child in el:
            handler = handlers.get(_local(child.tag))
            if handler is None:
                self.unknown(child, "broker")
            else:
                handler(child)

    def declared(self, el: ET.Element) -> None:
        for child in el:
            tag = _local(child.tag)
            if tag not in ("queue", "topic"):
                self.unknown(child, "broker/destinations")
                continue
            a = self.attrs(child, f"broker/destinations/{tag}", ("physicalName",))
            name = a.get("physicalName", "")
            if not name:
                self.note(f"broker/destinations/{tag}: no physicalName")
            elif "," in name or "*" in name.split(".") or ">" in name.split("."):
                self.note(f"broker/destinations/{tag} {name!r}: a wildcard or composite name")
            else:
                (self.queues if tag == "queue" else self.topics).append(name)

    def destination_policy(self, el: ET.Element) -> None:
        where = "broker/destinationPolicy"
        for pmap in el:
            if _local(pmap.tag) != "policyMap":
                self.unknown(pmap, where)
                continue
            default: list[dict[str, Any]] = []
            for child in pmap:
                tag = _local(child.tag)
                if tag == "policyEntries":
                    for entry in child:
                        if _local(entry.tag) == "policyEntry":
                            self.policy_entry(entry, self.policies)
                        else:
                            self.unknown(entry, f"{where}/policyMap/policyEntries")
                elif tag == "defaultEntry":
                    for entry in child:
                        self.policy_entry(entry, default, default_entry=True)
                else:
                    self.unknown(child, f"{where}/policyMap")
            self.policies.extend(default)  # ActiveMQ's defaultEntry applies when none matches

    def policy_entry(
        self, el: ET.Element, out: list[dict[str, Any]], *, default_entry: bool = False
    ) -> None:
        a = self.attrs(
            el,
            "policyEntry",
            (
                "queue", "topic", "tempQueue", "tempTopic", "memoryLimit", "prioritizedMessages",
                "queuePrefetch", "topicPrefetch", "gcInactiveDestinations",
                "inactiveTimoutBeforeGC", "inactiveTimeoutBeforeGC",
                "advisoryForSlowConsumers", "producerFlowControl",
            ),
        )  # fmt: skip
        entry: dict[str, Any] = {}
        if "queue" in a:
            entry.update(pattern=a["queue"], kind="queue")
        elif "topic" in a:
            entry.update(pattern=a["topic"], kind="topic")
        elif default_entry:
            entry.update(pattern=">")
        else:
            self.note(f"policyEntry {a}: neither queue= nor topic= (temp entries) not translated")
            return
        where = f"policyEntry {entry['pattern']}"
        for attr, key in (("prioritizedMessages", "prioritized_messages"),
                          ("gcInactiveDestinations", "gc_inactive_destinations"),
                          ("advisoryForSlowConsumers", "advisory_for_slow_consumers")):  # fmt: skip
            if attr in a:
                entry[key] = a[attr].strip().lower() == "true"
        for attr, key in (("queuePrefetch", "queue_prefetch"), ("topicPrefetch", "topic_prefetch")):
            if attr in a and (n := self.number(a[attr], f"{where}@{attr}")) is not None:
                entry[key] = n
        if "memoryLimit" in a and (n := self.number(a["memoryLimit"], where, size=True)):
            entry["memory_limit"] = n
        for attr in ("inactiveTimoutBeforeGC", "inactiveTimeoutBeforeGC"):
            if attr in a and (n := self.number(a[attr], f"{where}@{attr}")) is not None:
                entry["inactive_timeout_before_gc"] = n / 1000  # ms -> s
        if a.get("producerFlowControl", "true").strip().lower() != "true":
            self.note(f"{where}: producerFlowControl=false (ZoneMQ's producers always wait)")
        for child in el:
            tag = _local(child.tag)
            if tag == "deadLetterStrategy":
                self.dead_letter(child, entry, where)
            elif tag == "pendingMessageLimitStrategy":
                for s in child:
                    if _local(s.tag) == "constantPendingMessageLimitStrategy":
                        b = self.attrs(s, where, ("limit",))
                        if "limit" in b and (n := self.number(b["limit"], where)) is not None:
                            entry["topic_pending_limit"] = n
                    else:
                        self.unknown(s, f"{where}/pendingMessageLimitStrategy")
            else:
                self.unknown(child, where)
        out.append(entry)

    def dead_letter(self, el: ET.Element, entry: dict[str, Any], where: str) -> None:
        for s in el:
            tag = _local(s.tag)
            common = ("processExpired", "processNonPersistent")
            if tag == "individualDeadLetterStrategy":
                a = self.attrs(s, f"{where}/{tag}", (*common, "queuePrefix", "topicPrefix",
                               "useQueueForQueueMessages"))  # fmt: skip
                entry["dead_letter_strategy"] = "individual"
                prefix = a.get("topicPrefix" if entry.get("kind") == "topic" else "queuePrefix")
                if prefix:
                    entry["dead_letter_prefix"] = prefix
                if a.get("useQueueForQueueMessages", "true").lower() != "true":
                    self.note(f"{where}/{tag}: useQueueForQueueMessages=false (DLQs are queues)")
            elif tag == "sharedDeadLetterStrategy":
                a = self.attrs(s, f"{where}/{tag}", common)
                entry["dead_letter_strategy"] = "shared"
                for d in s:
                    queues = [q for q in d if _local(q.tag) == "queue"]
                    if _local(d.tag) == "deadLetterQueue" and queues:
                        name = self.attrs(queues[0], f"{where}/{tag}", ("physicalName",))
                        if name.get("physicalName"):
                            entry["dead_letter_queue"] = name["physicalName"]
                    else:
                        self.unknown(d, f"{where}/{tag}")
            else:
                self.unknown(s, f"{where}/deadLetterStrategy")
                continue
            if "processExpired" in a:
                entry["expired_to_dlq"] = a["processExpired"].lower() == "true"
            if "processNonPersistent" in a:
                entry["dead_letter_non_persistent"] = a["processNonPersistent"].lower() == "true"

    def plugins(self, el: ET.Element) -> None:
        for plugin in el:
            tag = _local(plugin.tag)
            if tag == "simpleAuthenticationPlugin":
                self.attrs(plugin, tag, ())
                for users in plugin:
                    for user in users if _local(users.tag) == "users" else ():
                        a = self.attrs(user, f"{tag}/authenticationUser",
                                       ("username", "password", "groups"))  # fmt: skip
                        name = a.get("username", "")
                        if not name:
                            continue
                        self.users[name] = a.get("password", "")
                        for group in _names(a.get("groups", "")):
                            self.groups.setdefault(group, []).append(name)
                    if _local(users.tag) != "users":
                        self.unknown(users, tag)
            elif tag == "authorizationPlugin":
                maps = [m for c in plugin for m in c if _local(c.tag) == "map"]
                for m in maps:
                    if _local(m.tag) != "authorizationMap":
                        self.unknown(m, f"{tag}/map")
                        continue
                    for part in m:
                        self.authorization_part(part)
            else:
                self.unknown(plugin, "broker/plugins")

    def authorization_part(self, part: ET.Element) -> None:
        where = "authorizationMap"
        tag = _local(part.tag)
        if tag == "authorizationEntries":
            for e in part:
                a = self.attrs(e, f"{where}/authorizationEntry",
                               ("queue", "topic", "read", "write", "admin"))  # fmt: skip
                entry: dict[str, Any] = {}
                if "queue" in a:
                    entry["queue"] = a["queue"]
                elif "topic" in a:
                    entry["topic"] = a["topic"]
                else:
                    self.note(f"{where}/authorizationEntry {a}: neither queue= nor topic=")
                    continue
                self.add_acl(entry, a)
        elif tag == "tempDestinationAuthorizationEntry":
            for e in part:
                a = self.attrs(e, f"{where}/{tag}", ("read", "write", "admin"))
                self.add_acl({"temp": True}, a)
        else:
            self.unknown(part, where)

    def add_acl(self, entry: dict[str, Any], a: Mapping[str, str]) -> None:
        for op in ("read", "write", "admin"):
            groups = _names(a.get(op, ""))
            for g in groups:
                self.groups.setdefault(g, [])  # ZoneMQ needs every group named
            entry[op] = groups
        self.authorization.append(entry)

    def connectors(self, el: ET.Element) -> None:
        for c in el:
            if _local(c.tag) != "transportConnector":
                self.unknown(c, "broker/transportConnectors")
                continue
            a = self.attrs(c, "transportConnector", ("name", "uri"))
            self.connector(a.get("uri", ""), f"transportConnector {a.get('name', '')}".strip())
        for name in ("stomp", "amqp"):
            # Only the connectors an activemq.xml lists are open in ActiveMQ.
            self.listeners.setdefault(name, {}).setdefault("enabled", False)

    def connector(self, uri: str, where: str) -> None:
        parsed = urllib.parse.urlsplit(uri)
        scheme = parsed.scheme.split("+")
        name, tls = scheme[0], "ssl" in scheme[1:]
        if name in ("tcp", "nio", "ssl"):
            # ActiveMQ's OpenWire connectors (ssl:// is OpenWire over TLS).
            name, tls = "openwire", tls or name == "ssl"
            self.note(
                f"{where} {uri}: translated to listeners.openwire, which is in progress in"
                " ZoneMQ (README: OpenWire)"
            )
        if name not in ("stomp", "amqp", "openwire") or not parsed.port:
            self.note(
                f"{where} {uri}: not translated (ZoneMQ listens for STOMP, AMQP and OpenWire)"
            )
            return
        listener = self.listeners.setdefault(name, {})
        if tls:
            listener["tls_port"] = parsed.port
            self.note(
                f"{where} {uri}: tls_port set; set tls.cert_file (PEM: the keystore is not"
                f" translated) and listeners.{name}.tls_enabled = true"
            )
        else:
            listener.update(enabled=True, port=parsed.port)
        host = parsed.hostname or ""
        if host not in ("localhost", "127.0.0.1"):
            self.note(f"{where} {uri}: host {host} not translated (set broker.bind)")
        options = urllib.parse.parse_qs(parsed.query)
        keys = {"maximumConnections": "max_connections"}
        keys["wireFormat.maxFrameSize"] = "max_message_size" if name == "amqp" else "max_frame_size"
        if name == "amqp":
            keys["wireFormat.maxAmqpFrameSize"] = "max_frame_size"
        for option, values in options.items():
            if option in keys and (n := self.number(values[0], f"{where} {option}")):
                listener[keys[option]] = n
            else:
                self.note(f"{where} {uri}: option {option} not translated")

    def system_usage(self, el: ET.Element) -> None:
        for usage in el:
            if _local(usage.tag) != "systemUsage":
                self.unknown(usage, "broker/systemUsage")
                continue
            a = self.attrs(usage, "systemUsage", ("sendFailIfNoSpace",))
            if a.get("sendFailIfNoSpace", "").lower() == "true":
                self.destinations["store_full_policy"] = "fail"
            for part in usage:
                if _local(part.tag) != "storeUsage":
                    self.unknown(part, "systemUsage/systemUsage")
                    continue
                for s in part:
                    b = self.attrs(s, "storeUsage", ("limit",))
                    if "limit" in b and (n := self.number(b["limit"], "storeUsage", size=True)):
                        self.destinations["store_limit"] = n

    # -- TOML ------------------------------------------------------------------------------

    def toml(self, source: str) -> str:
        out = [f"# Translated from {source} by `zonemq import-activemq-xml`."]

        def table(name: str, values: Mapping[str, Any]) -> None:
            if values:
                out.extend(["", f"[{name}]"])
                out.extend(f"{toml_key(k)} = {toml_value(v)}" for k, v in values.items())

        table("broker", self.broker)
        for name, values in self.listeners.items():
            table(f"listeners.{name}", values)
        table("destinations", self.destinations)
        for entry in self.policies:
            out.extend(["", "[[destinations.policies]]"])
            out.extend(f"{k} = {toml_value(v)}" for k, v in entry.items())
        if self.users:
            table("auth.users", self.users)
        if self.groups:
            table("auth.groups", self.groups)
        for acl in self.authorization:
            out.extend(["", "[[auth.authorization]]"])
            out.extend(f"{k} = {toml_value(v)}" for k, v in acl.items())
        for kind, names in (("queues", self.queues), ("topics", self.topics)):
            for name in names:
                out.extend(["", f"[[{kind}]]", f"name = {toml_value(name)}"])
        return "\n".join(out) + "\n"


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def translate(
    text: str, source: str = "activemq.xml", props: Mapping[str, str] | None = None
) -> tuple[str, list[str]]:
    """activemq.xml text -> (ZoneMQ TOML, what was not translated). Raises ValueError
    when it is not XML."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise ValueError(f"{source} is not XML: {exc}") from None
    t = Translation(props or {})
    t.document(root)
    return t.toml(source), t.notes
