"""`zonemq admin ...`: the admin REST API (protocols/http/admin.py) from a shell.

A thin client over urllib (no dependency beyond the standard library): each command is
one or two requests; tables for people, `--json` prints the API's answer as it is, for
scripts. Exit status 0 on success, 1 when the broker refused (its error printed), 2
when it could not be reached. Queue names go in the URL percent-encoded, so every name
works (`ActiveMQ.DLQ`, `a/b`, `orders.fifo`).
"""

from __future__ import annotations

import argparse
import base64
import getpass
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any

DEFAULT_URL = "http://127.0.0.1:8161"
TIMEOUT = 30.0


class AdminError(Exception):
    """The API answered with an error (`status`, its code and message)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status


class Unreachable(Exception):
    """No answer from the broker's console port."""


class AdminClient:
    """JSON requests to one broker's admin API."""

    def __init__(self, url: str, user: str | None = None, password: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if user is not None:
            token = base64.b64encode(f"{user}:{password or ''}".encode()).decode()
            self.headers["Authorization"] = f"Basic {token}"

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers=self.headers
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            text = exc.read().decode(errors="replace")
            try:
                err = json.loads(text)
                raise AdminError(exc.code, err["error"], err["message"]) from None
            except (json.JSONDecodeError, KeyError, TypeError):
                raise AdminError(exc.code, exc.reason, text.strip()) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise Unreachable(f"cannot reach {self.url}: {reason}") from None


def seg(name: str) -> str:
    """A name as one URL path segment."""
    return urllib.parse.quote(name, safe="")


def table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    """Rows as aligned text columns: (key, heading) pairs; None shows as '-'."""

    def cell(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, bool):
            return "yes" if value else "no"
        return str(value)

    cells = [[heading for _, heading in columns]]
    cells += [[cell(row.get(key)) for key, _ in columns] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


_DESTINATIONS = [
    ("kind", "KIND"),
    ("name", "NAME"),
    ("depth", "DEPTH"),
    ("consumers", "CONSUMERS"),
    ("enqueued", "ENQUEUED"),
    ("dequeued", "DEQUEUED"),
    ("inflight", "INFLIGHT"),
    ("dlq", "DLQ"),
    ("paused", "PAUSED"),
]
_MESSAGES = [
    ("id", "ID"),
    ("priority", "PRI"),
    ("persistent", "PERSISTENT"),
    ("redelivered", "REDELIVERED"),
    ("size", "SIZE"),
    ("preview", "BODY"),
]
_CONNECTIONS = [
    ("id", "ID"),
    ("protocol", "PROTOCOL"),
    ("user", "USER"),
    ("peer", "PEER"),
    ("client_id", "CLIENT-ID"),
    ("subscriptions", "SUBSCRIPTIONS"),
]


def _preview(msg: dict[str, Any], width: int = 40) -> str:
    body = msg["body"] if msg["body_encoding"] == "text" else f"base64:{msg['body']}"
    body = body.replace("\n", "\\n")
    return body if len(body) <= width else body[: width - 3] + "..."


def _kv(obj: dict[str, Any]) -> str:
    width = max(len(k) for k in obj)
    lines = []
    for key, value in obj.items():
        if isinstance(value, bool):
            shown: Any = "yes" if value else "no"
        else:
            shown = json.dumps(value) if isinstance(value, dict | list) else value
        lines.append(f"{key.ljust(width)}  {'-' if shown is None else shown}")
    return "\n".join(lines)


# -- commands: each returns (the API's answer, the text for people) ----------------------

Result = tuple[Any, str]


def cmd_list(c: AdminClient, a: argparse.Namespace) -> Result:
    query = f"?kind={a.kind}" if a.kind else ""
    out = c.call("GET", f"/api/destinations{query}")
    return out, table(out["destinations"], _DESTINATIONS)


def cmd_stat(c: AdminClient, a: argparse.Namespace) -> Result:
    if a.name is None:
        out = c.call("GET", "/api/broker")
        return out, _kv(out)
    kind = "topics" if a.topic else "queues"
    out = c.call("GET", f"/api/{kind}/{seg(a.name)}")
    return out, _kv(out)


def cmd_browse(c: AdminClient, a: argparse.Namespace) -> Result:
    out = c.call("GET", f"/api/queues/{seg(a.name)}/messages?offset={a.offset}&limit={a.limit}")
    rows = [{**m, "preview": _preview(m)} for m in out["messages"]]
    shown = f"{len(rows)} of {out['total']} pending (from {out['offset']})"
    return out, table(rows, _MESSAGES) + "\n" + shown


def cmd_send(c: AdminClient, a: argparse.Namespace) -> Result:
    body: dict[str, Any] = {"persistent": not a.non_persistent, "priority": a.priority}
    if a.body == "-":
        data = sys.stdin.buffer.read()
        try:
            body["body"] = data.decode()
        except UnicodeDecodeError:
            body["body"], body["base64"] = base64.b64encode(data).decode(), True
    else:
        body["body"] = a.body
    if a.ttl:
        body["ttl_ms"] = a.ttl
    props = {}
    for item in a.property or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise AdminError(400, "invalid", f"--property wants KEY=VALUE, not {item!r}")
        props[key] = value
    if props:
        body["properties"] = props
    kind = "topics" if a.topic else "queues"
    out = c.call("POST", f"/api/{kind}/{seg(a.name)}/messages", body)
    return out, f"sent {out['id']} to {out['kind']} {out['name']}"


def cmd_purge(c: AdminClient, a: argparse.Namespace) -> Result:
    out = c.call("DELETE", f"/api/queues/{seg(a.name)}/messages")
    return out, f"purged {out['purged']} message(s) from {out['name']}"


def cmd_move(c: AdminClient, a: argparse.Namespace) -> Result:
    body: dict[str, Any] = {"to": a.target}
    if a.id is not None:
        body["id"] = a.id
    elif a.selector is not None:
        body["selector"] = a.selector
    else:
        body["all"] = True
    verb = "copy" if a.copy else "move"
    out = c.call("POST", f"/api/queues/{seg(a.name)}/{verb}", body)
    done = "copied" if a.copy else "moved"
    return out, f"{done} {out[done]} message(s) from {out['name']} to {out['to']}"


def cmd_retry(c: AdminClient, a: argparse.Namespace) -> Result:
    out = c.call("POST", f"/api/queues/{seg(a.name)}/retry")
    return out, (
        f"moved {out['moved']} message(s) back to their original queues; "
        f"{out['left']} without one left on {out['name']}"
    )


def cmd_delete(c: AdminClient, a: argparse.Namespace) -> Result:
    if a.message is not None:
        out = c.call("DELETE", f"/api/queues/{seg(a.name)}/messages/{seg(a.message)}")
        return out, f"deleted message {out['deleted']} from {out['name']}"
    kind = "topics" if a.topic else "queues"
    out = c.call("DELETE", f"/api/{kind}/{seg(a.name)}")
    return out, f"deleted {out['kind']} {out['deleted']}"


def cmd_pause(c: AdminClient, a: argparse.Namespace) -> Result:
    out = c.call("POST", f"/api/queues/{seg(a.name)}/{a.admin_command}")
    return out, f"{out['name']}: {'paused' if out['paused'] else 'dispatching'}"


def cmd_connections(c: AdminClient, a: argparse.Namespace) -> Result:
    if a.close is not None:
        out = c.call("DELETE", f"/api/connections/{seg(a.close)}")
        return out, f"closed {out['closed']}"
    out = c.call("GET", "/api/connections")
    return out, table(out["connections"], _CONNECTIONS)


COMMANDS: dict[str, Callable[[AdminClient, argparse.Namespace], Result]] = {
    "list": cmd_list,
    "stat": cmd_stat,
    "browse": cmd_browse,
    "send": cmd_send,
    "purge": cmd_purge,
    "move": cmd_move,
    "retry-dlq": cmd_retry,
    "delete": cmd_delete,
    "pause": cmd_pause,
    "resume": cmd_pause,
    "connections": cmd_connections,
}


def _common() -> argparse.ArgumentParser:
    """The connection and output options, taken before or after the command (SUPPRESS:
    the one given after does not reset the one given before)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url", default=argparse.SUPPRESS, help=f"console URL (default {DEFAULT_URL})"
    )
    common.add_argument("--user", default=argparse.SUPPRESS, help="HTTP Basic user")
    common.add_argument(
        "--password", default=argparse.SUPPRESS, help="its password (asked when --user is alone)"
    )
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print the JSON answer"
    )
    return common


def configure(commands: Any) -> None:
    """Add `zonemq admin` to the subparsers of `zonemq` (`commands`)."""
    common = _common()
    parser = commands.add_parser(
        "admin", parents=[common], help="queues, messages and connections over the admin API"
    )
    sub = parser.add_subparsers(dest="admin_command", required=True, metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(name, parents=[common], help=help)
        return parser

    p = command("list", "queues and topics with their counters")
    p.add_argument("--kind", choices=["queue", "topic", "temp-queue", "temp-topic"])
    p = command("stat", "the broker's totals, or one destination's counters")
    p.add_argument("name", nargs="?")
    p.add_argument("--topic", action="store_true", help="NAME is a topic")
    p = command("browse", "a queue's pending messages")
    p.add_argument("name")
    p.add_argument("--offset", type=int, default=0)
    p.add_argument("--limit", type=int, default=100)
    p = command("send", "send a message (BODY '-' reads stdin)")
    p.add_argument("name")
    p.add_argument("body")
    p.add_argument("--topic", action="store_true", help="NAME is a topic")
    p.add_argument("--property", "-p", action="append", metavar="KEY=VALUE")
    p.add_argument("--priority", type=int, default=4)
    p.add_argument("--ttl", type=int, default=0, metavar="MS", help="expire after MS")
    p.add_argument("--non-persistent", action="store_true")
    p = command("purge", "delete every pending message of a queue")
    p.add_argument("name")
    p = command("move", "move (or --copy) messages to another queue")
    p.add_argument("name")
    p.add_argument("target")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--id", help="one message by id")
    how.add_argument("--selector", help="the messages a JMS selector matches")
    how.add_argument("--all", action="store_true", help="every pending message")
    p.add_argument("--copy", action="store_true", help="copy: leave the originals")
    p = command("retry-dlq", "move dead letters back to their original queues")
    p.add_argument("name", nargs="?", default="ActiveMQ.DLQ")
    p = command("delete", "delete a queue or topic, or --message ID of a queue")
    p.add_argument("name")
    p.add_argument("--topic", action="store_true", help="NAME is a topic")
    p.add_argument("--message", metavar="ID", help="delete this pending message only")
    p = command("pause", "hold dispatch of a queue (until resume or restart)")
    p.add_argument("name")
    p = command("resume", "dispatch a paused queue again")
    p.add_argument("name")
    p = command("connections", "client connections (or --close ID)")
    p.add_argument("--close", metavar="ID", help="close this connection")


def run(args: argparse.Namespace) -> int:
    """Run one admin command; the process exit status."""
    user = getattr(args, "user", None)
    password = getattr(args, "password", None)
    if user is not None and password is None and sys.stdin.isatty():
        password = getpass.getpass(f"Password for {user}: ")
    client = AdminClient(getattr(args, "url", DEFAULT_URL), user, password)
    try:
        answer, text = COMMANDS[args.admin_command](client, args)
    except AdminError as exc:
        print(f"zonemq admin: {exc}", file=sys.stderr)
        return 1
    except Unreachable as exc:
        print(f"zonemq admin: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(answer, indent=2) if getattr(args, "json", False) else text)
    return 0
