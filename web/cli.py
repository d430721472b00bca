"""The `giaoban` command: the domain's commands (meetings.cli) plus `serve`, which runs the web app."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from aiohttp import web

from meetings import cli
from meetings.logs import access_logger
from meetings.settings import Settings
from web.app import create_app


def cmd_serve(settings: Settings, _args: argparse.Namespace) -> int:
    """Run the web server until interrupted."""
    app = create_app(settings)
    print(f"Giao Ban is running at {settings.base_url}/", flush=True)
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        shutdown_timeout=settings.shutdown_timeout,
        print=None,
        access_log=access_logger(settings.access_log),
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `giaoban` command."""
    return cli.main(argv, serve=cmd_serve)


if __name__ == "__main__":
    sys.exit(main())
