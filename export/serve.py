"""python -m export.serve model.onnx [more.onnx ...]: the exported models as an HTTP service,
with a page to draw digits on.

The command line: flags, loading the files, the listening socket, uvicorn's run and its Ctrl-C.
The application (routes, request decoding, bounds, the Guard middleware) is export.app; the
micro-batching of onnxruntime calls is export.batcher. Built on FastAPI and uvicorn, the Python
ecosystem's usual pair; uvicorn is the ASGI server.

Requests that arrive together are answered by one onnxruntime call: the first waits at most
--max-wait-ms for others that are already being decoded (a request alone does not wait), up to
--max-batch images; --max-batch 1 turns that off. Bounds: --max-body, --max-images,
--limit-concurrency, --body-timeout (export.app says what each refuses, and how). A request
whose Host is not a name of this service gets 421; --allowed-host adds names.
"""

from __future__ import annotations

import ipaddress
import math
import re
import socket
import sys
from pathlib import Path

from lenet_spec.checkpoint import sha256
from lenet_spec.cli import ArgumentParser, HelpFormatter, UsageError

from .app import (
    DEFAULT_BODY_TIMEOUT_S,
    DEFAULT_LIMIT_CONCURRENCY,
    DEFAULT_MAX_BODY,
    DEFAULT_MAX_IMAGES,
    LOCAL_HOSTS,
    Served,
    StartError,
    connection_class,
    create_app,
    host_name,
)
from .batcher import DEFAULT_MAX_BATCH, DEFAULT_MAX_WAIT_MS
from .metadata import MetadataError
from .runtime import DEVICES, RuntimeUnavailable, info_of, provider_of, session

GRACEFUL_SHUTDOWN_S = 3  # on Ctrl-C, requests in flight get this long to be answered; then they get 503
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def load_models(specs: list[str], device: str = "auto", threads: int | None = None) -> dict[str, Served]:
    """The model files named on the command line (FILE or NAME=FILE; a file's name is its stem).

    Raises:
        StartError: one line, for a file that is missing, not ONNX, or not exported by this
            project, and for two models of the same name.
    """
    models: dict[str, Served] = {}
    for spec in specs:
        name, _, file = spec.rpartition("=") if "=" in spec and not Path(spec).exists() else ("", "", spec)
        path = Path(file)
        name = name or path.stem
        if not NAME.fullmatch(name):
            raise StartError(f"{spec}: {name!r} cannot name a model (letters, digits, '.', '_', '-'); give one as NAME={file}")
        if name in models:
            raise StartError(f"{spec}: two models are named {name!r} ({models[name].path} and {path}); name one as OTHER={file}")
        if not path.is_file():
            raise StartError(f"{file}: no such file; export one with `python -m export CKPT --out {file}`")
        try:
            sess = session(path, device, threads)
            info = info_of(sess, str(path))
        except (MetadataError, RuntimeUnavailable, ValueError) as e:
            raise StartError(str(e)) from None
        models[name] = Served(name, path, sha256(path.read_bytes()), sess, info)
    return models


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: a free one).

    Raises:
        StartError: one line, when the address cannot be used.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as e:
        raise StartError(f"--host {host}: not an address of this machine ({e.strerror}); use 127.0.0.1, or 0.0.0.0 for every interface") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as e:
        sock.close()
        hint = "pass another --port (or 0 for a free one)" if e.errno == 98 else "pass another --host or --port"
        raise StartError(f"cannot listen on {host}:{port} ({e.strerror}); {hint}") from None
    sock.set_inheritable(True)
    return sock


def _reach(host: str) -> str:
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if loopback:
        return "only this machine can reach it; --host 0.0.0.0 listens on every interface, for use behind a reverse proxy with TLS"
    return "it listens beyond this machine: anyone who can reach this address can use it"


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(
        prog="python -m export.serve", description="Serve exported ONNX files over HTTP, with a page to draw digits on.", formatter_class=HelpFormatter
    )
    p.add_argument(
        "models",
        nargs="+",
        metavar="MODEL",
        help="ONNX files written by `python -m export`, each as FILE or NAME=FILE (the first is the default; a file's name is its stem)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on; 0.0.0.0 for every interface")
    p.add_argument("--port", type=int, default=8000, help="port to listen on; 0 for a free one (printed)")
    p.add_argument("--max-batch", type=int, default=DEFAULT_MAX_BATCH, help="images in one onnxruntime call; 1 turns micro-batching off")
    p.add_argument("--max-wait-ms", type=float, default=DEFAULT_MAX_WAIT_MS, help="how long a request waits for others to share its onnxruntime call")
    p.add_argument("--max-body", type=int, default=DEFAULT_MAX_BODY, help="largest request body in bytes (413 beyond)")
    p.add_argument("--body-timeout", type=float, default=DEFAULT_BODY_TIMEOUT_S, help="seconds for a request's body to arrive whole (408 beyond)")
    p.add_argument("--max-images", type=int, default=DEFAULT_MAX_IMAGES, help="images in one JSON request (413 beyond)")
    p.add_argument(
        "--limit-concurrency", type=int, default=DEFAULT_LIMIT_CONCURRENCY, help="requests in flight at once (503 beyond); idle connections do not count"
    )
    p.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help=f"a Host name the service answers besides {', '.join(LOCAL_HOSTS)} and --host (421 for others); repeatable; '*' for any",
    )
    p.add_argument("--threads", type=int, default=None, help="onnxruntime's threads per call (default: one per core)")
    p.add_argument("--device", default="auto", choices=list(DEVICES), help="onnxruntime provider: CUDA when available (auto), or forced")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"], help="uvicorn's log level")
    p.add_argument("--no-access-log", action="store_true", help="do not log each request")
    args = p.parse_args(argv)
    prog = "export.serve"
    try:
        for flag, value, low in [
            ("--max-batch", args.max_batch, 1),
            ("--max-body", args.max_body, 1024),
            ("--max-images", args.max_images, 1),
            ("--limit-concurrency", args.limit_concurrency, 1),
        ]:
            if value < low:
                raise UsageError(f"{flag} {value}: must be at least {low}")
        if not (0 <= args.port <= 65535):
            raise UsageError(f"--port {args.port}: must be 0 to 65535")
        if not (math.isfinite(args.max_wait_ms) and 0 <= args.max_wait_ms <= 1000):
            raise UsageError(f"--max-wait-ms {args.max_wait_ms}: must be 0 to 1000")
        if not (math.isfinite(args.body_timeout) and args.body_timeout > 0):
            raise UsageError(f"--body-timeout {args.body_timeout}: must be more than 0")
        if args.threads is not None and args.threads < 1:
            raise UsageError(f"--threads {args.threads}: must be at least 1")
        try:
            import fastapi  # noqa: F401
            import uvicorn
        except ImportError as e:
            raise StartError(f'{e.name} is not installed: pip install -e ".[serve]"') from None
        models = load_models(args.models, args.device, args.threads)
        sock = listen(args.host, args.port)
        hosts = (
            None
            if "*" in args.allowed_host
            else frozenset([*LOCAL_HOSTS, host_name(f"[{args.host}]" if ":" in args.host else args.host), *map(host_name, args.allowed_host)])
        )
        app = create_app(
            models,
            args.max_body,
            args.max_batch,
            args.max_wait_ms,
            max_images=args.max_images,
            hosts=hosts,
            limit_concurrency=args.limit_concurrency,
            body_timeout_s=args.body_timeout,
        )
    except (UsageError, StartError) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    names = ", ".join(f"{name} ({served.info.variant}, {served.info.dataset}, {provider_of(served.sess)})" for name, served in models.items())
    batching = f"micro-batching up to {args.max_batch} images, {args.max_wait_ms:g} ms wait" if args.max_batch > 1 else "no micro-batching"
    print(f"{prog}: serving {names}; {batching}", flush=True)
    print(f"{prog}: http://{shown}:{port}/ ({_reach(args.host)})", flush=True)
    # no uvicorn limit_concurrency: it counts open sockets, idle ones too; Guard counts requests in flight
    config = uvicorn.Config(
        app, http=connection_class(), log_level=args.log_level, access_log=not args.no_access_log, timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S
    )

    class Server(uvicorn.Server):
        async def shutdown(self, sockets=None):
            app.state.stop_decoding()  # what waits for the pool is answered 503 now, not cancelled after the graceful wait
            await super().shutdown(sockets)

    Server(config).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    from lenet_spec.cli import run as run_cli

    run_cli(main, "export.serve")
