"""The ``reliqa serve`` web viewer: a thin FastAPI layer over :class:`reliqa.web.viewer.Viewer`.

Safety rules (docs/web.md):
    - binds 127.0.0.1 unless told otherwise (the CLI warns on any other host);
    - request bodies over ``max_request_bytes`` and files over ``max_upload_bytes`` get 413,
      images over ``max_pixels`` get 413 before decoding (the header is read first);
    - uploads and ``--root`` files must be images by CONTENT: Pillow must identify them as one of
      :data:`ACCEPTED_FORMATS` (an image renamed ``.png`` that is really a PDF is refused);
    - a path from the client is always relative to ``--root``; it is resolved (symlinks
      followed) and refused unless it stays inside the root, so ``..``, absolute paths and
      symlinks that leave the root cannot read anything.

Every error is JSON ``{"error": "..."}`` with a 4xx status.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from PIL import Image
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from reliqa.checks import resolve_device
from reliqa.exceptions import ReliqaError
from reliqa.web.viewer import (
    MAX_TEST_IMAGES,
    ApiError,
    Limits,
    Viewer,
    check_image_file,
    resolve_under_root,
)

STATIC_DIR = Path(__file__).resolve().parent / "static"


# ----------------------------------------------------------------------------------- uploads


class _Intake:
    """Uploads saved to a private temporary folder (removed after the request)."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._folder = tempfile.TemporaryDirectory(prefix="reliqa-web-")
        self._count = 0

    async def save(self, upload: UploadFile) -> tuple[str, Path]:
        name = Path(upload.filename or "upload").name or "upload"
        data = await upload.read(self.limits.max_upload_bytes + 1)
        if len(data) > self.limits.max_upload_bytes:
            raise ApiError(
                413, f"{name}: larger than the upload limit of {self.limits.max_upload_bytes:,} bytes"
            )
        if not data:
            raise ApiError(400, f"{name}: empty file")
        self._count += 1
        path = Path(self._folder.name) / f"upload-{self._count}"
        path.write_bytes(data)
        return name, path

    async def images(
        self, uploads: list[UploadFile] | None, paths: list[str] | None, viewer: Viewer, noun: str
    ) -> list[tuple[str, Path]]:
        """The uploaded files, then the named files of the viewer's folder, as (name, path): at
        least one (else 400) and at most :data:`MAX_TEST_IMAGES` (else 413); ``noun`` names an
        image in those errors ("test image", "image")."""
        images = [await self.save(upload) for upload in uploads or []]
        images += [(path, viewer.root_file(path)) for path in paths or []]
        if not images:
            raise ApiError(400, f"give at least one {noun}")
        if len(images) > MAX_TEST_IMAGES:
            raise ApiError(413, f"at most {MAX_TEST_IMAGES} {noun}s per request")
        return images

    def close(self) -> None:
        self._folder.cleanup()


class _BodyLimit:
    """ASGI middleware: 411 for a body without Content-Length, 413 above the limit."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] in ("POST", "PUT", "PATCH"):
            headers = dict(scope["headers"])
            length = headers.get(b"content-length")
            problem = None
            if length is None:
                problem = (411, "a Content-Length header is required")
            elif not length.isdigit() or int(length) > self.limit:
                problem = (413, f"request larger than the limit of {self.limit:,} bytes")
            if problem is not None:
                response = JSONResponse({"error": problem[1]}, status_code=problem[0])
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


# ----------------------------------------------------------------------------------- app


def create_app(
    root: str | os.PathLike | None = None,
    *,
    limits: Limits = Limits(),
    device: str | None = None,
) -> FastAPI:
    """The viewer's FastAPI application.

    Args:
        root: folder whose images the page may pick (never anything outside it); None: uploads only.
        limits: upload, request and pixel-count limits.
        device: torch device for the models.
    """
    device = str(resolve_device(device))  # a missing GPU fails here, not as 500s later
    root_path = Path(root) if root is not None else None
    if root_path is not None and not root_path.is_dir():
        raise ReliqaError(f"--root {root_path}: not a directory")
    viewer = Viewer(root_path, limits, device)
    app = FastAPI(title="reliqa viewer", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.viewer = viewer
    app.add_middleware(_BodyLimit, limit=limits.max_request_bytes)

    _add_error_handlers(app)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> FileResponse:
        path = resolve_under_root(STATIC_DIR, name)
        media = {".js": "text/javascript", ".css": "text/css"}.get(path.suffix, "application/octet-stream")
        return FileResponse(path, media_type=media)

    @app.get("/api/info")
    def info() -> dict[str, Any]:
        return viewer.info()

    @app.get("/api/files")
    def files() -> dict[str, Any]:
        return {"files": viewer.files()}

    @app.get("/api/file")
    def file(path: Annotated[str, Query()]) -> FileResponse:
        resolved = viewer.root_file(path)
        image_format = check_image_file(resolved, path, limits)
        return FileResponse(resolved, media_type=Image.MIME.get(image_format, "application/octet-stream"))

    _add_upload_routes(app, viewer, limits)

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(status_code=204)

    return app


def _add_error_handlers(app: FastAPI) -> None:
    """Every error becomes JSON ``{"error": message}`` with a 4xx status (docs/web.md)."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, error: ApiError) -> JSONResponse:
        return JSONResponse({"error": error.message}, status_code=error.status)

    @app.exception_handler(HTTPException)
    async def _http_error(_: Request, error: HTTPException) -> JSONResponse:
        return JSONResponse({"error": str(error.detail)}, status_code=error.status_code)

    @app.exception_handler(RequestValidationError)
    async def _bad_request(_: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc'])}: {problem['msg']}" for problem in error.errors()
        )
        return JSONResponse({"error": problems or "bad request"}, status_code=400)

    @app.exception_handler(ReliqaError)
    async def _reliqa_error(_: Request, error: ReliqaError) -> JSONResponse:
        return JSONResponse({"error": str(error)}, status_code=400)


def _add_upload_routes(app: FastAPI, viewer: Viewer, limits: Limits) -> None:
    """The routes that take uploads (kept in a private temporary folder for one request)."""

    @app.post("/api/compare")
    async def compare(
        reference: Annotated[UploadFile | None, File()] = None,
        reference_path: Annotated[str | None, Form()] = None,
        tests: Annotated[list[UploadFile] | None, File()] = None,
        test_paths: Annotated[list[str] | None, Form()] = None,
    ) -> dict[str, Any]:
        intake = _Intake(limits)
        try:
            if (reference is None) == (reference_path is None):
                raise ApiError(400, "give one reference: an uploaded file or a reference_path")
            ref = await intake.save(reference) if reference is not None else (reference_path, viewer.root_file(reference_path))  # type: ignore[arg-type]
            candidates = await intake.images(tests, test_paths, viewer, "test image")
            return await run_in_threadpool(viewer.compare, candidates, ref)  # type: ignore[arg-type]
        finally:
            intake.close()

    @app.post("/api/score")
    async def score(
        images: Annotated[list[UploadFile] | None, File()] = None,
        paths: Annotated[list[str] | None, Form()] = None,
    ) -> dict[str, Any]:
        intake = _Intake(limits)
        try:
            sources = await intake.images(images, paths, viewer, "image")
            return await run_in_threadpool(viewer.score, sources)
        finally:
            intake.close()

    @app.post("/api/gmc")
    async def gmc(
        results: Annotated[UploadFile, File()],
        score_column: Annotated[str, Form()],
        mos_column: Annotated[str, Form()],
        std_column: Annotated[str | None, Form()] = None,
    ) -> dict[str, Any]:
        intake = _Intake(limits)
        try:
            table = await intake.save(results)
            return await run_in_threadpool(viewer.gmc, table, score_column, mos_column, std_column or None)
        finally:
            intake.close()
