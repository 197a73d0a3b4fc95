"""The vsa command: video stream analytics on Kafka."""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import sys
import traceback
from collections.abc import Callable, Sequence

from vsa import __version__
from vsa.helptext import add_action_argument, settings_epilog
from vsa.runtime.logs import setup_logging
from vsa.runtime.redact import mask_secrets
from vsa.runtime.settings import ConfigError, KafkaSettings
from vsa.topic_flags import DeprecatedSpelling

Command = Callable[[argparse.Namespace], int]

#: Modules that add a service's subcommands: each has ``register(subparsers)``, which adds its
#: parsers and sets ``func`` on them (importing heavy libraries only inside the command).
SERVICE_COMMANDS = (
    "vsa.services.ingest.run",
    "vsa.services.indexer.cli",
    "vsa.services.detector.cli",
    "vsa.services.tracker.cli",
    "vsa.services.captioner.cli",
    "vsa.services.notifier.cli",
    "vsa.services.console.cli",
    "vsa.operate.cameras",
    "vsa.operate.alerts",
    "vsa.operate.stats",
)

DEVSTACK_ACTIONS = {
    "up": "start (or reuse) Kafka and OpenSearch on 127.0.0.1, wait until healthy",
    "down": "stop exactly what 'up' started (never an external cluster)",
    "status": "endpoints, pids and health; exit 1 if a part is unhealthy",
    "fetch": "only download and cache Kafka and OpenSearch (to use offline)",
    "bundle": "write one offline archive: Java runtime, Kafka, OpenSearch, wheels, models",
}
TOPICS_ACTIONS = {
    "create": "create the prefix's missing topics (existing ones are left alone)",
    "list": "what exists of the prefix's topics: partitions, messages, lag per group",
    "delete": "delete the prefix's topics: asks (or --yes); non-empty: --force",
}


def _devstack(args: argparse.Namespace) -> int:
    from vsa.devstack import DevstackSettings, stack
    from vsa.runtime.settings import load_settings

    overrides = {"brokers": args.brokers} if args.brokers is not None else {}
    settings = load_settings(DevstackSettings, None, **overrides)
    if args.bundle is not None and args.action != "up":
        print(
            "vsa devstack: --bundle goes with up (to make one: vsa devstack bundle)",
            file=sys.stderr,
        )
        return 2
    if args.action == "bundle":
        from vsa.devstack.bundle_cli import bundle_command

        return bundle_command(args, settings)
    if args.action == "up" and args.bundle is not None:
        from vsa.devstack.bundle_cli import up_from_bundle

        return up_from_bundle(args, settings)
    if args.action == "up":
        info = stack.up(
            kafka=not args.no_kafka, opensearch=not args.no_opensearch, settings=settings
        )
        print(stack.format_status(stack.status(settings)))
        if not (info.kafka_external or args.no_kafka):
            print("stop it with: vsa devstack down")
    elif args.action == "down":
        stopped = stack.down(settings=settings)
        print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    elif args.action == "fetch":
        stack.fetch(settings=settings)
        print("Kafka and OpenSearch are downloaded and cached")
    else:
        st = stack.status(settings)
        print(stack.format_status(st))
        return 0 if st.healthy else 1
    return 0


def _topics(args: argparse.Namespace) -> int:
    from vsa.runtime.kafka import count_brokers, ensure_topics, spec_replication
    from vsa.runtime.settings import KafkaSettings, TopicNames, load_settings
    from vsa.runtime.topics import TopicsSettings

    overrides: dict[str, object] = {}
    if args.prefix:
        overrides["names"] = TopicNames(prefix=args.prefix)
    if args.partitions:
        overrides["partitions"] = args.partitions
    topics = load_settings(TopicsSettings, None, **overrides)
    kafka = load_settings(KafkaSettings)
    specs = topics.specs()
    from vsa.runtime.topic_admin import unreachable

    error = unreachable(kafka)
    if error is not None:
        print(f"vsa topics {args.action}: {error}", file=sys.stderr)
        return 1
    if args.action == "create":
        brokers = count_brokers(kafka)
        created = ensure_topics(kafka, specs)
        print(f"created {len(created)} topics, {len(specs) - len(created)} existed already")
        for name in created:
            rep = spec_replication(specs[name], brokers)
            print(
                f"  {name}  partitions={specs[name].partitions} replicas={rep.factor} "
                f"min.insync.replicas={rep.min_insync_replicas}"
            )
    elif args.action == "delete":
        return _topics_delete(args, kafka, list(specs))
    else:
        return _topics_list(kafka, list(specs), topics.names.prefix)
    return 0


def _topics_list(kafka: KafkaSettings, planned: list[str], prefix: str) -> int:
    """What exists of the planned topics (and others of the prefix): partitions, messages,
    consumer lag per group; missing ones marked, with the command that creates them."""
    from confluent_kafka import KafkaException

    from vsa.runtime.topic_admin import describe_topics, format_topic_states
    from vsa.runtime.topic_check import unreachable_message

    try:
        states = describe_topics(kafka, planned, prefix)
    except KafkaException:  # it answered a moment ago, then went away
        print(f"vsa topics list: {unreachable_message(kafka, 10)}", file=sys.stderr)
        return 1
    print("\n".join(format_topic_states(states, prefix)))
    return 0


def _topics_delete(args: argparse.Namespace, kafka: KafkaSettings, names: list[str]) -> int:
    """Delete after a confirmation (or ``--yes``); non-empty topics only with ``--force``."""
    from vsa.runtime.kafka import delete_topics
    from vsa.runtime.topic_admin import delete_refusal, message_counts

    counts = message_counts(kafka, names)
    if not counts:
        print("no such topics: nothing to delete")
        return 0
    interactive = sys.stdin.isatty()
    reason = delete_refusal(
        counts, prefix=args.prefix, yes=args.yes, force=args.force, interactive=interactive
    )
    if reason is not None:
        print(f"vsa topics delete: {reason}", file=sys.stderr)
        return 2
    if not args.yes:
        what = "PRODUCTION topics (no prefix)" if not args.prefix else "topics"
        print(f"about to delete {len(counts)} {what}: {', '.join(sorted(counts))}")
        if input("type 'delete' to go ahead: ").strip() != "delete":
            print("nothing deleted")
            return 1
    delete_topics(kafka, list(counts))
    print(f"deleted {len(counts)} topics")
    return 0


def _assets(args: argparse.Namespace) -> int:
    from vsa.assets import fetch_vtest

    print(fetch_vtest())
    return 0


def _demo(args: argparse.Namespace) -> int:
    from vsa.demo import demo_main

    return demo_main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vsa", description=__doc__)
    parser.add_argument("--version", action="version", version=f"vsa {__version__}")
    parser.add_argument(
        "--log-level", default=None, help="DEBUG, INFO, WARNING (env VSA_LOG_LEVEL)."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="Run the main job: the whole pipeline on the local stack.")
    p.add_argument("--cameras", type=int, default=3, help="Simulated cameras from the sample clip.")
    p.add_argument("--fps", type=float, default=3.0, help="Frames/s per camera into the pipeline.")
    p.add_argument("--duration", type=float, default=90.0, help="Seconds to run (Ctrl-C stops).")
    p.add_argument("--drain", type=float, default=20.0, help="Seconds to let the stages finish.")
    p.add_argument(
        "--console-port",
        type=int,
        default=8088,
        help="Port of the web console the demo starts (0: any free port).",
    )
    p.add_argument(
        "--no-console",
        dest="console",
        action="store_false",
        help="Run without the web console (by default it stays up after the run until Ctrl-C).",
    )
    p.set_defaults(func=_demo)

    p = sub.add_parser(
        "devstack", help="Local Kafka + OpenSearch: up, down, status, fetch, offline bundle."
    )
    add_action_argument(p, DEVSTACK_ACTIONS)
    p.add_argument("--no-kafka", action="store_true", help="up, bundle: leave Kafka out.")
    p.add_argument("--no-opensearch", action="store_true", help="up, bundle: leave OpenSearch out.")
    p.add_argument(
        "--brokers",
        type=int,
        help="up: Kafka nodes (env VSA_DEVSTACK_BROKERS, default 1); 3 gives topics "
        "replication factor 3 and min.insync.replicas 2. down stops every node.",
    )
    from vsa.devstack.bundle_cli import add_bundle_arguments

    add_bundle_arguments(p)
    p.set_defaults(func=_devstack)

    p = sub.add_parser(
        "topics",
        help="Create, list or delete the pipeline's topics.",
        epilog=settings_epilog("TopicsSettings", "VSA_TOPICS_", config_flags=False),
    )
    add_action_argument(p, TOPICS_ACTIONS)
    p.add_argument("--topic-prefix", dest="prefix", default="", help="Topic name prefix.")
    p.add_argument(
        "--prefix",
        dest="prefix",
        action=DeprecatedSpelling,
        use="--topic-prefix",
        help="Deprecated spelling of --topic-prefix.",
    )
    p.add_argument("--partitions", type=int, help="Partitions of keyed topics.")
    p.add_argument(
        "--yes", action="store_true", help="delete: do not ask (required when not interactive)."
    )
    p.add_argument("--force", action="store_true", help="delete: also topics holding messages.")
    p.set_defaults(func=_topics)

    p = sub.add_parser("assets", help="Fetch the sample clip (vtest.avi) and print its path.")
    p.set_defaults(func=_assets)

    for module in SERVICE_COMMANDS:
        importlib.import_module(module).register(sub)
    return parser


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def log_level_error(flag: str | None) -> str | None:
    """One line naming a bad ``--log-level`` (or ``VSA_LOG_LEVEL``) and the valid values."""
    source, level = (
        ("--log-level", flag) if flag else ("VSA_LOG_LEVEL", os.environ.get("VSA_LOG_LEVEL"))
    )
    if level is None or level.upper() in LOG_LEVELS:
        return None
    return (
        f"vsa: invalid log level {level!r} from {source}: expected one of {', '.join(LOG_LEVELS)}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    bad_level = log_level_error(args.log_level)
    if bad_level is not None:
        print(bad_level, file=sys.stderr)
        return 2
    setup_logging(args.command, args.log_level)
    func: Command = args.func
    try:
        return func(args)
    except ConfigError as exc:
        print(f"vsa {args.command}: configuration error: {mask_secrets(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        name = type(exc).__name__
        if name in ("DevstackError", "AssetError", "ResumeError"):
            print(f"vsa {args.command}: {mask_secrets(str(exc))}", file=sys.stderr)
            return 1
        # A traceback may quote a URL with user:password: print it masked, never raw.
        print(mask_secrets(traceback.format_exc()), file=sys.stderr, end="")
        return 1
    finally:
        # The interpreter's last garbage collection at exit walks every object left (torch and
        # a model: 16 s measured on a busy 2-core node, after the indexer had stopped in 0.1 s),
        # eating into the SIGTERM grace period. Nothing is left to collect: skip it.
        gc.freeze()


if __name__ == "__main__":
    sys.exit(main())
