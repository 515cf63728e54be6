"""`thumbserver serve | check-config` (also `python -m server ...`)."""

from __future__ import annotations

import argparse
import atexit
import copy
import shutil
import tempfile
import json
import os
import sys
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml

from server import prerender as prerender_module
from server.config import ConfigError, Settings, load_settings

DEFAULT_CONFIG = Path("config.yaml")
# How the parent hands the already-validated settings to worker processes (workers > 1).
_SETTINGS_ENV = "_THUMBSERVER_EFFECTIVE_SETTINGS"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="thumbserver", description="Originals from disk and thumbnails on demand.")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the HTTP server")
    _add_config_option(serve)
    serve.add_argument("--host", help="address to bind (server.host)")
    serve.add_argument("--port", type=int, help="port to bind (server.port)")
    serve.add_argument("--root", help="folder of original images (storage.root)")
    serve.add_argument("--workers", type=int, help="worker processes (server.workers)")

    check = commands.add_parser("check-config", help="print the effective configuration, or what is wrong")
    _add_config_option(check)

    prerender = commands.add_parser(
        "prerender", help="render specs for every image (or the given paths) into the shared tier"
    )
    _add_config_option(prerender)
    prerender_module.add_arguments(prerender)

    sign = commands.add_parser("sign", help="print a path signed with the first of security.keys")
    _add_config_option(sign)
    sign.add_argument("path", metavar="PATH", help="e.g. /thumb/320x/photo.jpg (or /photo.jpg with sign_originals)")
    return parser


def _add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        help=f"YAML configuration file (default: ./{DEFAULT_CONFIG} when it exists)",
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(_config_file(args.config), overrides=_cli_overrides(args))
    except ConfigError as exc:
        print(f"thumbserver: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command == "sign":
        return sign(settings, args.path)
    if args.command == "serve" and settings.metrics.enabled:
        # Before prometheus-client is first imported (it reads the variable then), here and in
        # every worker process, which inherit the environment.
        _metrics_folder()
    try:
        # A shared tier that cannot be used stops start-up here, not at the first request.
        from server.app import check_shared_tier

        check_shared_tier(settings)
    except ConfigError as exc:
        print(f"thumbserver: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command == "check-config":
        print(yaml.safe_dump(_shown(settings), sort_keys=False), end="")
        return 0
    if args.command == "prerender":
        return prerender_module.run(settings, args)
    return serve(settings)


def _config_file(given: Path | None) -> Path | None:
    if given is not None:
        return given
    return DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None


def _cli_overrides(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    server = {key: getattr(args, key, None) for key in ("host", "port", "workers")}
    overrides: dict[str, dict[str, Any]] = {"server": {k: v for k, v in server.items() if v is not None}}
    if getattr(args, "root", None) is not None:
        overrides["storage"] = {"root": args.root}
    return overrides


def _shown(settings: Settings) -> dict[str, Any]:
    """The settings as plain data, with the signing secrets masked."""
    plain = json.loads(settings.model_dump_json())
    for key in ("keys", "salts"):
        plain["security"][key] = ["***"] * len(plain["security"][key])
    return plain


def sign(settings: Settings, path: str) -> int:
    """Print `path` with its signature segment: `/thumb/320x/a.jpg` -> `/thumb/{sig}/320x/a.jpg`."""
    from server.app import signer_for

    signer = signer_for(settings)
    if signer is None:
        print("thumbserver: configuration error: security.keys: empty, so nothing is signed", file=sys.stderr)
        return 2
    # Signed as it will be sent: percent-encode what a URL cannot hold, keep what is encoded already.
    raw = quote(path if path.startswith("/") else "/" + path, safe="/%:@!$&'()*+,;=~")
    prefix = settings.thumbnails.prefix + "/"
    if raw.startswith(prefix):
        rest = raw[len(prefix):]
        print(f"{prefix}{signer.sign(rest.encode())}/{rest}")
    elif settings.security.sign_originals and raw.startswith(settings.info.prefix + "/"):
        info = settings.info.prefix + "/"  # /info/a.jpg -> /info/{sig}/a.jpg, signed like originals
        rest = raw[len(info):]
        print(f"{info}{signer.sign(rest.encode())}/{rest}")
    elif settings.security.sign_originals:
        rest = raw[1:]
        print(f"/{signer.sign(rest.encode())}/{rest}")
    else:
        print(f"thumbserver: {path} is an original and security.sign_originals is false: it needs no signature",
              file=sys.stderr)
        return 2
    return 0


def serve(settings: Settings) -> int:
    """Run uvicorn until it is told to stop (SIGINT/SIGTERM let in-flight requests finish)."""
    import uvicorn

    from server.http.protocol import BoundedHttpToolsProtocol

    server = settings.server
    workers = len(os.sched_getaffinity(0)) if server.workers == "auto" else server.workers
    options: dict[str, Any] = {
        "host": server.host,
        "port": server.port,
        "workers": workers,
        "limit_concurrency": server.limit_concurrency,
        "timeout_keep_alive": server.timeout_keep_alive,
        "backlog": server.backlog,
        "h11_max_incomplete_event_size": server.h11_max_incomplete_event_size,
        "http": (
            partial(BoundedHttpToolsProtocol, head_timeout=server.timeout_request_head)
            if server.http == "httptools"
            else "h11"
        ),
        "access_log": server.access_log in ("text", True),
        "log_config": _log_config(),
        "server_header": False,
        # No WebSocket route exists: an Upgrade request must not reach a WebSocket stack at all.
        "ws": "none",
        "timeout_graceful_shutdown": 30,
    }
    if workers == 1:
        from server.app import create_app

        uvicorn.run(create_app(settings), **options)
    else:
        os.environ[_SETTINGS_ENV] = settings.model_dump_json()
        uvicorn.run("server.cli:worker_app", factory=True, **options)
    return 0


def _metrics_folder() -> None:
    """Point prometheus-client's multiprocess mode at an empty folder of this server's own.

    An operator's `PROMETHEUS_MULTIPROC_DIR` is used (and emptied: files of an earlier run would
    add its counts); otherwise a temporary folder, removed when the server exits.
    """
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        for pattern in ("*.db", "thumbserver_durations_*.json"):
            for leftover in Path(folder).glob(pattern):
                leftover.unlink(missing_ok=True)
        return
    folder = tempfile.mkdtemp(prefix="thumbserver-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    atexit.register(shutil.rmtree, folder, ignore_errors=True)


def _log_config() -> dict[str, Any]:
    """uvicorn's logging, plus the server's own `thumbserver` loggers (renders, shared-tier faults)."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["thumbserver"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


def worker_app():
    """The app of one worker process, built from the settings the parent validated."""
    from server.app import create_app

    return create_app(Settings.model_validate_json(os.environ[_SETTINGS_ENV]))
