"""Command line: `zonemq run` (and `python -m broker run`), `zonemq passwd` (a password
hash for ``[auth] users``), `zonemq admin` (the admin API's client, broker/admin_cli.py),
`zonemq config show` (the effective settings and their sources), `zonemq
import-activemq-xml` (broker/activemq_xml.py), `zonemq bench`,
`zonemq cluster`, `zonemq demo failover`, `zonemq --version`.

Flags override the config file and the environment (see broker/config.py). The first
SIGTERM or SIGINT drains gracefully within `broker.shutdown_timeout`; a second one exits
at once.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import getpass
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

from broker import admin_cli, banner, logs
from broker.activemq_xml import translate
from broker.auth import Auth
from broker.config import ConfigError, Settings, load_settings, load_with_sources
from broker.config_show import as_json, as_toml
from broker.passwords import hash_password
from broker.server import Broker, StartupError
from broker.store import DataDirLocked
from broker.version import broker_version

log = logging.getLogger("zonemq")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zonemq", description="ZoneMQ message broker")
    parser.add_argument("--version", action="version", version=f"zonemq {broker_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    admin_cli.configure(sub)
    sub.add_parser("bench", help="load generator: `zonemq bench --help` (python -m bench)")
    sub.add_parser(
        "demo", help="`zonemq demo failover [--kill-zone AZ | --partition]`: a 3-zone failover"
    )
    passwd = sub.add_parser(
        "passwd",
        help="print a scrypt hash of a password (read from the terminal, or a line of stdin)",
    )
    passwd.add_argument("--user", help='print `USER = "<hash>"`, a line for [auth] users')
    cluster = sub.add_parser("cluster", help="change a running cluster (through etcd)")
    cluster.add_argument("--config", required=True, help="a node's TOML config ([cluster])")
    csub = cluster.add_subparsers(dest="cluster_command", required=True)
    mia = csub.add_parser("min-insync-azs", help="set min_insync_azs cluster-wide, live")
    mia.add_argument("value", type=int)
    # The flags that set settings: `zonemq run`'s, and `zonemq config show`'s.
    flags = argparse.ArgumentParser(add_help=False)
    flags.add_argument("--config", help="TOML config file (default: embedded defaults)")
    flags.add_argument("--data-dir", help="data directory (broker.data_dir)")
    flags.add_argument("--bind", help="address every listener binds to (broker.bind)")
    flags.add_argument("--name", help="broker name (broker.name)")
    flags.add_argument("--stomp-port", type=int, help="STOMP port, 0 = ephemeral")
    flags.add_argument("--amqp-port", type=int, help="AMQP 1.0 port, 0 = ephemeral")
    flags.add_argument(
        "--openwire-port", type=int, help="OpenWire (ActiveMQ JMS client) port, 0 = ephemeral"
    )
    flags.add_argument("--sqs-port", type=int, help="SQS HTTP API port, 0 = ephemeral")
    flags.add_argument("--console-port", type=int, help="console/metrics HTTP port, 0 = ephemeral")
    flags.add_argument(
        "--region",
        help="SQS/SNS default region: unsigned requests' (listeners.aws.region)",
    )
    flags.add_argument(
        "--account-id", help="AWS account id in queue URLs and ARNs (listeners.aws.account_id)"
    )
    flags.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    flags.add_argument(
        "--log-format",
        choices=["text", "json"],
        help="json: one object per line (broker.log_format)",
    )
    flags.add_argument("--fsync", choices=["always", "interval", "never"], help="store.fsync")
    flags.add_argument(
        "--recover-skip-corrupt",
        action="store_true",
        default=None,
        help="start even if a record in the middle of the journal is corrupt",
    )
    sub.add_parser("run", parents=[flags], help="run the broker in the foreground")
    config = sub.add_parser("config", help="the configuration a broker would run with")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    show = config_sub.add_parser(
        "show",
        parents=[flags],
        help="print the effective settings and where each came from (secrets masked)",
    )
    show.add_argument("--json", action="store_true", help="JSON for scripts")
    imp = sub.add_parser(
        "import-activemq-xml",
        help="translate an activemq.xml into ZoneMQ TOML (stdout); what is not, on stderr",
    )
    imp.add_argument("file", help="the activemq.xml")
    imp.add_argument(
        "-D",
        dest="props",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a ${NAME} placeholder's value (as a Java system property)",
    )
    return parser


# The flag of each setting a flag sets (for `zonemq config show`'s sources).
_FLAG_OF = {
    "broker.data_dir": "--data-dir",
    "broker.bind": "--bind",
    "broker.name": "--name",
    "broker.log_level": "--log-level",
    "broker.log_format": "--log-format",
    "listeners.aws.region": "--region",
    "listeners.aws.account_id": "--account-id",
    "listeners.stomp.port": "--stomp-port",
    "listeners.amqp.port": "--amqp-port",
    "listeners.openwire.port": "--openwire-port",
    "listeners.aws.port": "--sqs-port",
    "listeners.console.port": "--console-port",
    "store.fsync": "--fsync",
    "store.skip_corrupt": "--recover-skip-corrupt",
}


def settings_from_args(args: argparse.Namespace) -> Settings:
    path, overrides = _load_args(args)
    return load_settings(path, overrides=overrides)


def config_show(args: argparse.Namespace) -> int:
    """`zonemq config show [--json] [run's flags]`: what `zonemq run` with the same
    flags and environment would use."""
    try:
        path, overrides = _load_args(args)
        settings, sources = load_with_sources(path, overrides=overrides, override_labels=_FLAG_OF)
    except ConfigError as exc:
        print(f"zonemq: configuration error: {exc}", file=sys.stderr)
        return 2
    print(as_json(settings, sources) if args.json else as_toml(settings, sources), end="")
    if args.json:
        print()
    return 0


def import_activemq_xml(path: str, props: list[str]) -> int:
    """`zonemq import-activemq-xml FILE [-D NAME=VALUE]`: the TOML on stdout once it
    loads as a configuration; each thing not translated on stderr."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        toml, notes = translate(text, path, dict(p.partition("=")[::2] for p in props))
    except (OSError, ValueError) as exc:
        print(f"zonemq: {exc}", file=sys.stderr)
        return 2
    for note in notes:
        print(f"not translated: {note}", file=sys.stderr)
    with tempfile.NamedTemporaryFile("w", suffix=".toml") as fh:
        fh.write(toml)
        fh.flush()
        try:
            load_settings(fh.name, env={})
        except ConfigError as exc:
            print(f"zonemq: the translation does not load: {exc}", file=sys.stderr)
            return 1
    print(toml, end="")
    return 0


def _load_args(args: argparse.Namespace) -> tuple[str | None, dict[str, Any]]:
    overrides: dict[str, Any] = {
        "broker.data_dir": args.data_dir,
        "broker.bind": args.bind,
        "broker.name": args.name,
        "broker.log_level": args.log_level,
        "broker.log_format": args.log_format,
        "listeners.stomp.port": args.stomp_port,
        "listeners.amqp.port": args.amqp_port,
        "listeners.openwire.port": args.openwire_port,
        "listeners.aws.port": args.sqs_port,
        "listeners.console.port": args.console_port,
        "listeners.aws.region": args.region,
        "listeners.aws.account_id": args.account_id,
        "store.fsync": args.fsync,
        "store.skip_corrupt": args.recover_skip_corrupt,
    }
    return args.config or os.environ.get("ZONEMQ_CONFIG"), overrides


def settings_origin(args: argparse.Namespace) -> list[str]:
    """The banner's "settings:" line: the file, the ZONEMQ_ variables and flags given."""
    flags = [
        name.replace("_", "-")
        for name, value in vars(args).items()
        if name not in ("command", "config") and value is not None
    ]
    config = args.config or os.environ.get("ZONEMQ_CONFIG")
    return banner.sources(config, os.environ, flags)


async def serve_node(settings: Settings, origin: list[str] | None = None) -> int:
    """Run a cluster node (active or standby) until a signal stops it."""
    from broker.cluster.node import ClusterNode

    loop = asyncio.get_running_loop()
    node = ClusterNode(settings)
    stop_requested = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop_requested.set)
    try:
        await node.start()
    except (StartupError, OSError, DataDirLocked) as exc:
        log.error("cannot start: %s", exc)
        return 1
    log.info("cluster node %s (%s) started", settings.cluster.node_id, settings.cluster.az)  # type: ignore[union-attr]
    # The node's listeners follow its role (a standby relays): the banner lists none.
    auth = Auth(settings.auth).summary()
    log.info("\n".join(banner.lines(settings, origin or [], {}, auth, broker_version())))
    await stop_requested.wait()
    await node.stop()
    return 0


async def serve(settings: Settings, origin: list[str] | None = None) -> int:
    """Run a broker until a signal stops it; returns the process exit code. `origin`:
    where the settings came from (the banner says)."""
    if settings.cluster is not None:
        return await serve_node(settings, origin)
    loop = asyncio.get_running_loop()
    broker = Broker(settings)
    stop_requested = asyncio.Event()
    signals = 0

    def on_signal(signum: int) -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            log.info("received %s, draining (again to exit at once)", signal.Signals(signum).name)
            stop_requested.set()
        else:
            log.warning("second signal: exiting now")
            os._exit(130)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        await broker.start()
    except StartupError as exc:
        log.error("cannot start: %s", exc)
        return 1
    except OSError as exc:
        log.error("cannot start: %s", exc)
        return 1
    log.info("broker %s started", settings.broker.name)
    endpoints = {
        label: address
        for listener in broker.listeners.values()
        for label, address in listener.addresses.items()
    }
    log.info(
        "\n".join(
            banner.lines(settings, origin or [], endpoints, broker.auth.summary(), broker_version())
        )
    )
    # Everything alive now (modules, recovered messages) lives as long as the process:
    # keep it out of the collector's scans, and collect the young generation less often,
    # since a broker allocates many short-lived objects per message and few cycles.
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)
    waits = [
        asyncio.ensure_future(stop_requested.wait()),
        asyncio.ensure_future(broker.failed.wait()),
    ]
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for w in waits:
        w.cancel()
    await broker.stop()
    return 1 if broker.failed.is_set() else 0


def cluster_command(args: argparse.Namespace) -> int:
    """`zonemq cluster --config F min-insync-azs N`."""
    from broker.cluster.admin import set_min_insync_azs

    try:
        settings = load_settings(args.config)
        print(asyncio.run(set_min_insync_azs(settings, args.value)))
    except (ConfigError, ValueError) as exc:
        print(f"zonemq: {exc}", file=sys.stderr)
        return 1
    return 0


def passwd(user: str | None) -> int:
    """`zonemq passwd`: the hash of a password typed twice at a terminal, or of the first
    line of stdin (for scripts); never echoed, never taken from the command line."""
    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            print("zonemq: passwords do not match", file=sys.stderr)
            return 1
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        print("zonemq: empty password", file=sys.stderr)
        return 1
    hashed = hash_password(password)
    print(f'{user} = "{hashed}"' if user else hashed)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:
        # `zonemq bench ...` is `python -m bench ...`: the load generator, not the broker
        # (imported only here, so the daemon never loads it).
        from bench.runner import main as bench_main

        return bench_main(argv[1:])
    if argv[:2] == ["demo", "failover"]:
        # The demo's clients (stomp.py, boto3) are the `demo` extra, imported only here.
        from broker.demo.failover import main as demo_main

        return demo_main(argv[2:])
    args = _parser().parse_args(argv)
    if args.command == "admin":
        return admin_cli.run(args)
    if args.command == "passwd":
        return passwd(args.user)
    if args.command == "cluster":
        return cluster_command(args)
    if args.command == "config":
        return config_show(args)
    if args.command == "import-activemq-xml":
        return import_activemq_xml(args.file, args.props)
    try:
        settings = settings_from_args(args)
    except ConfigError as exc:
        print(f"zonemq: configuration error: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.broker.log_level, settings.broker.log_format)
    origin = settings_origin(args)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency where it builds
        return asyncio.run(serve(settings, origin))
    return uvloop.run(serve(settings, origin))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
