"""`python -m devcluster`: run a devcluster API server until interrupted.

Prints one JSON line on stdout once ready (`{"event": "ready", "url": ..., "port": ...}`) and
optionally writes the same JSON to `--ready-file`, so scripts and tests can find the port.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys

from devcluster.server import DevCluster


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m devcluster",
        description="A single-machine stand-in for the Kubernetes "
        "API server (not a production component).",
    )
    parser.add_argument(
        "--port", type=int, default=0, help="port on 127.0.0.1; 0 lets the OS pick (default)"
    )
    parser.add_argument("--kubeconfig", default=None, help="write an admin kubeconfig here")
    parser.add_argument(
        "--namespace",
        default="default",
        help="namespace named by the kubeconfig's context (created)",
    )
    parser.add_argument("--nodes", type=int, default=1, help="number of nodes to register")
    parser.add_argument(
        "--ready-file", default=None, help="write the ready JSON here once listening"
    )
    parser.add_argument("--audit-log", default=None, help="append audit JSON lines here")
    parser.add_argument("--admin-token", default=None, help="fixed admin token (default random)")
    parser.add_argument(
        "--token",
        action="append",
        default=[],
        metavar="USER=TOKEN[:GROUPS]",
        help="extra static user token; groups comma-separated (repeatable)",
    )
    parser.add_argument(
        "--event-window",
        type=int,
        default=10000,
        help="watch events kept for resuming; older versions get 410 Gone",
    )
    parser.add_argument("--log-level", default="WARNING")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(message)s")
    cluster = DevCluster(
        port=args.port,
        kubeconfig=args.kubeconfig,
        nodes=args.nodes,
        namespace=args.namespace,
        audit_log=args.audit_log,
        admin_token=args.admin_token,
        event_window=args.event_window,
    )
    for spec in args.token:
        user, _, rest = spec.partition("=")
        token, _, groups = rest.partition(":")
        if not user or not token:
            print(
                f"error: --token must look like USER=TOKEN[:GROUPS], got {spec!r}", file=sys.stderr
            )
            return 2
        cluster.api.authenticator.add_user_token(user, [g for g in groups.split(",") if g], token)

    def ready(running: DevCluster) -> None:
        line = json.dumps(
            {
                "event": "ready",
                "url": running.url,
                "port": running.port,
                "kubeconfig": args.kubeconfig,
                "pid": os.getpid(),
                "caFile": running.certificates.ca_cert if running.certificates else None,
                "namespace": args.namespace,
            }
        )
        if args.ready_file:
            temporary = args.ready_file + ".tmp"
            with open(temporary, "w", encoding="utf-8") as out:
                out.write(line + "\n")
            os.replace(temporary, args.ready_file)
        print(line, flush=True)

    async def run() -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, cluster.stop_soon)
        del task
        await cluster.serve(ready)

    try:
        asyncio.run(run())
    except OSError as exc:
        print(f"error: devcluster could not listen: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
