"""The HTTP application of export.serve: request decoding, routes and their OpenAPI description,
the Guard middleware, and uvicorn's h11 protocol with a deadline on request heads.

    GET  /              the draw-a-digit page (plain HTML/CSS/JS from export/static, nothing from the internet)
    POST /v1/predict    a picture (PNG/JPEG/... body, or a multipart upload) or a JSON array
                        ([H][W] or [N][H][W], values in [0, 1]) -> {"model", "predictions"}
    GET  /v1/models     what each loaded file says about itself (variant, data set, labels, hashes)
    GET  /healthz       {"status": "ok"} while the service answers
    GET  /docs          the API, rendered from /openapi.json by the package (no CDN)

FastAPI checks the query parameters and writes the OpenAPI description. Neither torch nor
paddle is imported: a request goes through export.predict's own reading and preprocessing
(export.readers, export.preprocess, `ranked`), so a file gets the same answer here as from
`python -m export.predict`. Reading and preprocessing run in a pool of one thread per core, so
one large picture does not stop the server from answering others; onnxruntime calls go through
export.batcher.

Bounds: a body over max_body bytes gets 413 before it is read; a JSON stack of more than
max_images images, or of more than MAX_JSON_VALUES numbers, gets 413 from a count of its
brackets and commas before it is parsed; a picture is refused from its header when it claims
more than export.readers' MAX_PIXELS (a 50,000 x 50,000 PNG bomb is a few kilobytes); at most
limit_concurrency requests are taken at once (503 beyond; a connection counts only while it
has a request in flight), and a connection that has not sent a whole request head within
HEAD_TIMEOUT_S is closed (`connection_class`). A request whose Host is not one of `hosts` gets
421 (DNS rebinding: a page of evil.example resolved to 127.0.0.1).
"""

# no `from __future__ import annotations`: FastAPI reads the endpoints' annotations (Request, Query) at run time
import asyncio
import io
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .batcher import DEFAULT_MAX_BATCH, DEFAULT_MAX_WAIT_MS, Batcher
from .metadata import ModelInfo
from .predict import MAX_TOP, ranked
from .preprocess import model_inputs
from .readers import InputError, Unreadable, as_images, read_picture
from .runtime import provider_of

STATIC = Path(__file__).resolve().parent / "static"
DEFAULT_MAX_BODY = 4 * 2**20  # bytes: a 12 MP phone JPEG is 3-5 MB; a drawn digit's PNG is 2-10 KB
DEFAULT_LIMIT_CONCURRENCY = 128  # requests held at once (each at most --max-body): bounds memory; 503 beyond
# A 4 MiB body holds at most 2,675 28x28 images ("0," per value): 4,096 never refuses model-sized images that fit
# the body; it refuses stacks of tiny ones, each as dear to prepare as a full image (0.23 ms: fitted into 28x28).
DEFAULT_MAX_IMAGES = 4096
MAX_JSON_VALUES = 2**22  # numbers in one JSON body: 2.1 M fit in 4 MiB; binds when --max-body is raised
HEAD_TIMEOUT_S = 5.0  # s for a request head (line and headers) to arrive whole, from the connection's opening or its last answer
DEFAULT_BODY_TIMEOUT_S = 60.0  # a body must arrive whole within this of its head: 4 MiB at 0.6 Mbit/s (408 beyond)
LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]")  # Host names always allowed
JSON_TYPES = ("application/json",)
PICTURE_TYPES = ("image/",)  # image/png, image/jpeg, ...: Pillow identifies the format from the bytes
# no type, or octet-stream (the page's fallback): told apart by the first byte. Not application/x-www-form-urlencoded or
# text/plain: a web page of any site may send those to this service without the browser asking it first (CORS-simple)
SNIFFED_TYPES = ("", "application/octet-stream")


class StartError(ValueError):
    """The service cannot start as asked; the message is the one line to print."""


class RequestError(Exception):
    """A request answered with an error: `status` and one line naming the problem."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class Served:
    """One loaded model file."""

    name: str
    path: Path
    sha256: str
    sess: object
    info: ModelInfo
    batcher: Batcher | None = field(default=None, repr=False)

    def describe(self, default: bool) -> dict:
        i = self.info
        return {
            "name": self.name,
            "default": default,
            "file": self.path.name,  # not the server's folders
            "sha256": self.sha256,
            "variant": i.variant,
            "dataset": i.dataset,
            "labels": list(i.classes),
            "input": {"channels": i.channels, "height": i.height, "width": i.width},
            "source_framework": i.framework,
            "source_framework_version": i.framework_version,
            "spec_version": i.spec_version,
            "source": i.source,
            "checkpoint_sha256": i.checkpoint_sha256 or None,
            "provider": provider_of(self.sess),
            "runs": {"calls": self.batcher.calls, "images": self.batcher.images} if self.batcher else None,
        }


def _content_kind(content_type: str, body: bytes) -> str:
    """'json', 'picture' or 'multipart' for a request's Content-Type (and, with none or octet-stream, its first byte)."""
    kind = content_type.split(";")[0].strip().lower()
    if kind in JSON_TYPES or kind.endswith("+json"):
        return "json"
    if kind.startswith(PICTURE_TYPES):
        return "picture"
    if kind == "multipart/form-data":
        return "multipart"
    if kind in SNIFFED_TYPES:
        return "json" if body.lstrip()[:1] in (b"[", b"{") else "picture"
    raise RequestError(
        415,
        f"Content-Type {kind[:80]!r} is not taken: send a picture (image/png, image/jpeg, ...), multipart/form-data with a file, or "
        f"application/json (curl: -H 'Content-Type: image/png')",
    )


def _json_counts(body: bytes) -> tuple[int, int, int]:
    """(depth, elements of the outer array, numbers at most) of a JSON array, from its brackets
    and commas alone, before it is parsed. Exact for arrays of numbers; a string may hold
    brackets or commas, but an array holding strings is refused whatever its counts."""
    b = np.frombuffer(body, np.uint8)
    commas = b == ord(",")
    depth = np.cumsum((b == ord("[")).view(np.int8) - (b == ord("]")).view(np.int8), dtype=np.int16)  # past 32,767: json.loads refuses it
    return int(depth.max(initial=0)), int(np.count_nonzero(commas & (depth == 1))) + 1, int(np.count_nonzero(commas)) + 1


def json_images(body: bytes, colour: bool, max_images: int = DEFAULT_MAX_IMAGES) -> tuple[np.ndarray, bool]:
    """A JSON body -> (images as export.predict.as_images gives them, whether it held one image).
    How many images and numbers it holds is counted before it is parsed, so that a small body
    of many tiny images is refused before json.loads and preprocessing build anything from it.

    Raises:
        RequestError: 413 for more than `max_images` images or MAX_JSON_VALUES numbers; 400
            for a body that is not JSON; 422 for one that is not an array of numbers.
        InputError: from as_images (values, shape).
    """
    depth, outer, values = _json_counts(body)
    if values > MAX_JSON_VALUES:
        raise RequestError(
            413, f"the JSON body holds up to {values:,} numbers, more than the {MAX_JSON_VALUES:,} this service takes; send fewer images per request"
        )
    if depth >= (4 if colour else 3) and outer > max_images:
        raise RequestError(
            413,
            f"the JSON stack holds {outer:,} images, more than the {max_images:,} this service takes per request (--max-images); send them in several requests",
        )
    try:
        value = json.loads(body)
    except (ValueError, RecursionError) as e:  # RecursionError: arrays nested thousands deep
        raise RequestError(400, f"the body is not JSON ({type(e).__name__}: {str(e)[:120]})") from None
    if not isinstance(value, list):
        raise RequestError(422, f"expected a JSON array of images ([H][W] or [N][H][W] numbers in [0, 1]), got a JSON {type(value).__name__}")
    try:
        array = np.asarray(value)
    except (ValueError, OverflowError):  # ragged rows
        raise RequestError(422, "the JSON array is not rectangular: every image needs the same number of rows, every row the same length") from None
    del value
    # NumPy makes [true, 1] integers: without strings, "true" and "false" in the text are JSON's booleans
    booleans = array.dtype.kind == "b" or (array.dtype.kind in "iuf" and (b"true" in body or b"false" in body))
    if booleans or array.dtype.kind not in "uif":
        raise RequestError(422, f"the JSON array holds {'booleans' if booleans else 'values that are not all numbers'}; send numbers in [0, 1]")
    if array.dtype.kind in "iu":
        array = array.astype(np.float64)  # JSON's integers are numbers on [0, 1] like its floats, never 0-255
    return as_images(array, colour), array.ndim == (3 if colour else 2)


def decode(body: bytes, kind: str, info: ModelInfo, max_images: int = DEFAULT_MAX_IMAGES) -> tuple[np.ndarray, bool]:
    """A request body -> the model's input batch (N, C, H, W), and whether the request held one
    image (a picture, or a JSON [H][W]) rather than a stack. Runs in a worker thread.

    Raises:
        RequestError: 400 for bytes that are not a picture or JSON; 413 for a JSON stack over
            `max_images`; 422 for a picture or array that cannot be classified (shape, values,
            no ink, too many pixels).
    """
    colour = info.channels == 3
    try:
        if kind == "json":
            images, single = json_images(body, colour, max_images)
            picture = False
        else:
            images, picture, single = read_picture(io.BytesIO(body), colour)[None], True, True
        return model_inputs(images, info, picture), single
    except Unreadable as e:
        raise RequestError(400, str(e)) from None
    except InputError as e:
        raise RequestError(422, str(e)) from None


def host_name(value: str) -> str:
    """The name in a Host header, lower case, without its port: '[::1]:8000' -> '[::1]'."""
    host = value.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.rpartition(":")[0] if ":" in host else host


async def _send_error(send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), (b"connection", b"close")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """The ASGI layer in front of the application. 421 for a Host that is not one of `hosts` (None:
    any): a page of evil.example that its DNS points at 127.0.0.1 sends Host: evil.example. 503
    beyond `limit` requests in flight: requests, not sockets (uvicorn's own limit counts every
    open connection, so idle ones turn clients away). And a request still running when uvicorn's
    graceful shutdown ends (it cancels it) is answered 503, not with a traceback in the log."""

    def __init__(self, app, hosts: frozenset[str] | None, limit: int | None):
        self.app, self.hosts, self.limit = app, hosts, limit
        self.in_flight = 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if self.hosts is not None:
            host = next((value.decode("latin-1") for name, value in scope["headers"] if name == b"host"), "")
            if host_name(host) not in self.hosts:
                return await _send_error(send, 421, f"Host {host[:80]!r} is not a name of this service (a page of another site whose name points here?); "
                                                    f"if it is yours, start the service with --allowed-host {host_name(host)[:80] or 'NAME'}")  # fmt: skip
        if self.limit is not None and self.in_flight >= self.limit:
            return await _send_error(send, 503, f"the service is answering {self.limit} requests already (--limit-concurrency); retry shortly")
        started = False

        async def tracked(message):
            nonlocal started
            started = True
            await send(message)

        self.in_flight += 1
        try:
            await self.app(scope, receive, tracked)
        except asyncio.CancelledError:  # only uvicorn's shutdown cancels a request
            if not started:
                await _send_error(send, 503, "the service is shutting down; retry once it is back")
        finally:
            self.in_flight -= 1


def connection_class():
    """uvicorn's h11 protocol, with a deadline on the request head: a connection is closed when
    it has not sent a whole request line and headers HEAD_TIMEOUT_S after it opened or after its
    last answer. uvicorn closes an idle keep-alive connection (timeout_keep_alive) but never one
    that has sent nothing yet, and a byte each second (slowloris) restarts its keep-alive timer;
    h11 bounds a head's size (16 KiB), not its time."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class Connection(H11Protocol):
        head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._watch_head()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self._watch_head()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._watch_head()

        def connection_lost(self, exc) -> None:
            if self.head_timer is not None:
                self.head_timer.cancel()
            super().connection_lost(exc)

        def _watch_head(self) -> None:
            waiting = self.conn.their_state is h11.IDLE and not self.transport.is_closing()  # IDLE: no request under way
            if waiting and self.head_timer is None:
                self.head_timer = self.loop.call_later(HEAD_TIMEOUT_S, self._head_late)
            elif not waiting and self.head_timer is not None:
                self.head_timer.cancel()
                self.head_timer = None

        def _head_late(self) -> None:
            self.head_timer = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.close()

    return Connection


def create_app(
    models: dict[str, Served],
    max_body: int = DEFAULT_MAX_BODY,
    max_batch: int = DEFAULT_MAX_BATCH,
    max_wait_ms: float = DEFAULT_MAX_WAIT_MS,
    workers: int | None = None,
    max_images: int = DEFAULT_MAX_IMAGES,
    hosts: frozenset[str] | None = frozenset(LOCAL_HOSTS),
    limit_concurrency: int | None = DEFAULT_LIMIT_CONCURRENCY,
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S,
):
    """The FastAPI application serving `models` (the first is the default), behind `Guard`
    (Host names `hosts`, None for any; at most `limit_concurrency` requests in flight)."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, Query, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, JSONResponse
    from starlette.datastructures import UploadFile
    from starlette.exceptions import HTTPException
    from starlette.formparsers import MultiPartException, MultiPartParser
    from starlette.requests import ClientDisconnect

    if not models:
        raise StartError("no model to serve")
    default = next(iter(models))
    pool = ThreadPoolExecutor(workers or os.cpu_count() or 1, thread_name_prefix="prepare")
    for served in models.values():
        served.batcher = Batcher(served.sess, max_batch, max_wait_ms / 1000, pool)

    @asynccontextmanager
    async def lifespan(app):
        for served in models.values():
            served.batcher.start()
        yield
        for served in models.values():
            await served.batcher.stop()
        pool.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title="lenet-parity",
        summary="LeNet models exported to ONNX, served with onnxruntime",
        version="1",
        docs_url=None,  # FastAPI's Swagger UI loads from a CDN; /docs is served by the package instead
        redoc_url=None,
        lifespan=lifespan,
    )

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    @app.exception_handler(RequestError)
    async def request_error(request, e: RequestError):
        return error(e.status, str(e))

    @app.exception_handler(HTTPException)
    async def http_error(request, e: HTTPException):
        if e.status_code == 404:
            return error(404, f"no such page: {request.url.path}; the API is POST /v1/predict, GET /v1/models, GET /healthz (see /docs)")
        return error(e.status_code, str(e.detail))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request, e: RequestValidationError):
        first = e.errors()[0]
        where = " ".join(str(part) for part in first.get("loc", ()))
        return error(422, f"{where}: {first.get('msg', 'invalid')}".strip())

    def pick(name: str | None) -> Served:
        served = models.get(name or default)
        if served is None:
            raise RequestError(404, f"no model named {name!r}; loaded: {', '.join(models)} (GET /v1/models)")
        return served

    async def read_body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body:
            raise RequestError(413, f"the body is {int(declared):,} bytes, more than the {max_body:,} this service takes (--max-body)")
        chunks, size = [], 0
        try:
            async with asyncio.timeout(body_timeout_s):  # a body sent a byte at a time would hold its --limit-concurrency slot
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > max_body:  # a chunked body, which declares no length
                        raise RequestError(413, f"the body is more than the {max_body:,} bytes this service takes (--max-body)")
                    chunks.append(chunk)
        except TimeoutError:
            raise RequestError(408, f"the body took more than {body_timeout_s:g} s to arrive (--body-timeout)") from None
        except ClientDisconnect:  # it hung up before its body was whole: nobody to answer, nothing to log
            raise RequestError(400, "the client closed the connection before its body was whole") from None
        if not size:
            raise RequestError(400, "the body is empty: send a picture or a JSON array")
        return b"".join(chunks)

    async def multipart_file(request: Request, body: bytes) -> bytes:
        async def stream():
            yield body

        try:
            form = await MultiPartParser(request.headers, stream(), max_files=1, max_fields=16).parse()
        except MultiPartException as e:
            raise RequestError(400, f"the multipart body cannot be read ({e.message})") from None
        files = [value for _, value in form.multi_items() if isinstance(value, UploadFile)]
        if not files:
            raise RequestError(400, "the multipart body holds no file: upload one, e.g. curl -F file=@digit.png")
        data = await files[0].read()
        await form.close()
        if not data:
            raise RequestError(400, "the uploaded file is empty")
        return data

    example = {
        "model": default,
        "predictions": [{"class": 7, "label": "7", "prob": 0.9981}, {"class": 3, "label": "3", "prob": 0.0012}, {"class": 2, "label": "2", "prob": 0.0004}],
    }
    errors = {
        status: {"description": text, "content": {"application/json": {"example": {"error": "one line naming the problem"}}}}
        for status, text in [
            (400, "the body is not a picture or JSON"),
            (404, "no model of that name"),
            (408, "the body took longer than --body-timeout to arrive"),
            (413, "the body is larger than --max-body, or a JSON stack holds more than --max-images images"),
            (421, "a Host header that is not a name of this service (--allowed-host)"),
            (415, "an unsupported Content-Type"),
            (422, "a picture or array that cannot be classified: wrong shape, values outside [0, 1], no ink, too many pixels"),
            (503, "more than --limit-concurrency requests in flight, or the service is shutting down"),
        ]
    }
    body_doc = {
        "required": True,
        "content": {
            "image/png": {"schema": {"type": "string", "format": "binary"}},
            "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {"schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}},
            "application/json": {
                "schema": {"type": "array", "items": {"type": "array"}, "description": "[H][W] (one image) or [N][H][W] numbers in [0, 1], ink high"},
                "example": [[0.0] * 4] * 2,
            },
        },
    }

    @app.post(
        "/v1/predict",
        summary="Classify a picture or arrays of pixels",
        description=(
            "A picture (PNG, JPEG, BMP, GIF, TIFF, WebP, PPM; any size up to 16.7 MP, any colours, dark ink on paper or light on dark) goes "
            "through MNIST's own preprocessing, as in `python -m export.predict`. A JSON array of the model's size with ink high is taken "
            "as it is. One image gives `predictions` as a list of classes; an [N][H][W] stack gives a list of such lists."
        ),
        responses={200: {"description": "the most probable classes, most probable first", "content": {"application/json": {"example": example}}}, **errors},
        openapi_extra={"requestBody": body_doc},
    )
    async def predict(
        request: Request,
        model: str | None = Query(None, description=f"a loaded model's name (default: {default}); GET /v1/models lists them"),
        top: int = Query(3, ge=1, le=MAX_TOP, description="how many classes to return per image (at most the model's classes)"),
    ):
        served = pick(model)
        body = await read_body(request)
        kind = _content_kind(request.headers.get("content-type", ""), body)
        if kind == "multipart":
            body, kind = await multipart_file(request, body), "picture"
        served.batcher.arriving += 1
        try:
            batch, single = await asyncio.get_running_loop().run_in_executor(pool, decode, body, kind, served.info, max_images)
        except RuntimeError:  # the pool is shut down: Ctrl-C
            raise RequestError(503, "the service is shutting down; retry once it is back") from None
        finally:
            served.batcher.arrived()
        try:
            logits = await served.batcher(batch)
        except Exception as e:  # onnxruntime's own error types
            raise RequestError(500, f"onnxruntime failed: {str(e).splitlines()[0][:200] if str(e) else type(e).__name__}") from None
        top = min(top, len(served.info.classes))
        predictions = [[{"class": k, "label": label, "prob": p} for k, label, p in classes] for classes in ranked(logits, served.info, top)]
        return {"model": served.name, "predictions": predictions[0] if single else predictions}

    @app.get("/v1/models", summary="The loaded models and what their files say about themselves")
    async def list_models():
        return {"default": default, "models": [served.describe(name == default) for name, served in models.items()]}

    @app.get("/healthz", summary="Whether the service answers")
    async def healthz():
        return {"status": "ok", "models": list(models)}

    security = {
        "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; connect-src 'self'",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-cache",
    }

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html", headers=security)

    @app.get("/docs", include_in_schema=False)
    async def docs():
        return FileResponse(STATIC / "docs.html", headers=security)

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str):
        path = STATIC / name
        if "/" in name or name.startswith(".") or not path.is_file():
            raise RequestError(404, f"no such file: /static/{name}")
        return FileResponse(path, headers=security)

    def stop_decoding() -> None:
        """Drop the decoding not yet begun (its requests get 503, through Guard): called as the server begins to shut down."""
        pool.shutdown(wait=False, cancel_futures=True)

    app.state.stop_decoding = stop_decoding
    app.add_middleware(Guard, hosts=hosts, limit=limit_concurrency)
    return app
