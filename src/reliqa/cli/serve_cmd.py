"""``reliqa serve``: the local web viewer (logic in reliqa.web.app)."""

from __future__ import annotations

import errno
import socket
from pathlib import Path
from typing import Annotated

import typer

from reliqa.cli.app import app, checked_device, usage_error, use_threads
from reliqa.cli.options import DeviceOption, ThreadsOption
from reliqa.exceptions import ReliqaError

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


@app.command("serve")
def serve_command(
    host: Annotated[
        str,
        typer.Option(
            "--host",
            help="Address to bind (loopback by default).",
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8765,
    root: Annotated[
        Path | None,
        typer.Option(
            "--root",
            help="Folder whose images the page may open (nothing outside it is readable).",
        ),
    ] = None,
    device: DeviceOption = "cpu",
    max_upload_mb: Annotated[
        float,
        typer.Option(
            "--max-upload-mb",
            help="Largest uploaded file (MB).",
        ),
    ] = 25.0,
    max_megapixels: Annotated[
        float,
        typer.Option(
            "--max-megapixels",
            help="Largest image (megapixels).",
        ),
    ] = 36.0,
    threads: ThreadsOption = None,
) -> None:
    """Open a browser page to compare images: relational maps, rankings, NR scores, GMC."""
    if not 1 <= port <= 65535:
        usage_error(f"--port must be in 1..65535, got {port}")
    device = checked_device(device)
    use_threads(threads)
    try:
        from reliqa.web.app import create_app
        from reliqa.web.viewer import Limits
    except ImportError as error:
        usage_error(f"the viewer needs the web extra: pip install 'reliqa[web]' ({error})")
    import uvicorn

    if max_upload_mb <= 0 or max_megapixels <= 0:
        usage_error("--max-upload-mb and --max-megapixels must be positive")
    limits = Limits(
        max_upload_bytes=int(max_upload_mb * 1024 * 1024),
        max_request_bytes=int(max_upload_mb * 1024 * 1024) * 4 + 1024 * 1024,
        max_pixels=int(max_megapixels * 1_000_000),
    )
    try:
        application = create_app(root, limits=limits, device=device)
    except ReliqaError as error:
        usage_error(str(error))
    if host not in LOOPBACK_HOSTS:
        typer.echo(
            f"warning: serving on {host}: anyone who can reach this address can use the viewer "
            "and read the images under --root",
            err=True,
        )
    # Bind first, announce after: a port in use is one clear line (exit 2), and the URL
    # printed is one that answers.
    listening = bind_socket(host, port)
    typer.echo(f"reliqa viewer on http://{_url_host(host)}:{port}/ (Ctrl+C to stop)", err=True)
    server = uvicorn.Server(uvicorn.Config(application, log_level="warning"))
    server.run(sockets=[listening])


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on (host, port); bad usage (exit 2) if it cannot be bound."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        usage_error(f"--host {host}: cannot resolve it ({error.strerror})")
    family, kind, protocol, _, address = infos[0]
    listening = socket.socket(family, kind, protocol)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listening.bind(address)
        listening.listen(128)
    except OSError as error:
        listening.close()
        reason = "already in use" if error.errno == errno.EADDRINUSE else error.strerror or str(error)
        usage_error(f"--port {port} on {host}: {reason}; choose another with --port")
    listening.set_inheritable(True)
    return listening


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
