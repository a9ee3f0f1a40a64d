"""Mock of OpenAI's embeddings API (``POST /v1/embeddings``), for tests and development.

The same client code talks to it and to OpenAI (``OPENAI_BASE_URL=http://127.0.0.1:8002/v1``),
the official ``openai`` SDK included. Request body (OpenAI API reference, "Create embeddings"):
``{"input", "model", "dimensions"?, "encoding_format"?, "user"?}``, where ``input`` is any of
the four forms the API accepts: a string, a list of strings, a list of token ids (one input),
or a list of token-id lists. Token ids are cl100k_base's (the tokenizer of OpenAI's embedding
models, offline from ``bpe-openai``, which the mock needs: :func:`create_app` raises
:class:`~docingest.errors.DependencyMissing` without it); an input given as token ids is decoded
to its text, so it gets the vector of that text given as a string, as with the real service.

Each input gets a deterministic unit vector (from the SHAKE-256 of its UTF-8 bytes, so the same
text gives the same vector in any batch position and in either form); ``usage`` holds real token
counts (cl100k_base; the list's length for token ids).
The work per request is kept small (vectors computed for the whole batch at once, counts by the
Rust tokenizer) and runs on a thread, not the event loop, so ``--latency-ms`` holds when several
requests are in flight.

Refusals, with OpenAI's status and body ``{"error": {"message", "type", "param", "code"}}``
(the SDK raises ``openai.BadRequestError``, ``NotFoundError``, ``AuthenticationError``); the
messages are the service's own where they were found in public reports (issue threads of
projects that met them), else in the style of its current validator (``Invalid 'param': ...``
with codes ``invalid_type``, ``integer_below_min_value``, ``integer_above_max_value``):

- 401: no ``Authorization: Bearer`` header;
- 400: a body that is not a JSON object; an unknown parameter; no ``model``; an ``input`` of
  no accepted form, empty (``""``, ``[]``, ``[[]]``, an empty string in a list), of more than
  ``max_inputs`` (2,048) inputs, or with a token id cl100k_base does not define;
  ``encoding_format`` other than ``float``/``base64``; ``dimensions`` on a model that does not
  support it (``text-embedding-ada-002``), not an integer, below 1 or above the model's native
  length; an input over ``max_input_tokens`` (8,192) tokens; over ``max_request_tokens``
  (300,000) tokens in all;
- 404 ``model_not_found``: a model other than ``text-embedding-3-small`` (1,536 dimensions),
  ``text-embedding-3-large`` (3,072) and ``text-embedding-ada-002`` (1,536, no ``dimensions``);
- 404 ``Invalid URL (METHOD /path)`` (type ``invalid_request_error``, no param nor code), as
  OpenAI answers a path it does not serve: any other path, or another method on these
  (``GET /v1/models``, ``GET /v1/embeddings``); the SDK raises ``openai.NotFoundError``.

Every reply (faults, refusals, ``/health`` and ``/_mock/*`` included) carries an
``x-request-id`` header, ``req_`` and 32 hex digits, as OpenAI's do (the SDK's ``_request_id``
and ``APIStatusError.request_id``).

The ``dimensions`` knob (``--dimensions``) is for fault tests: it forces the length of the
vectors of a reply, whatever was asked, but only once the request passed every check above; a
wrong ``dimensions`` in the request is still refused.

``GET /_mock/stats`` adds ``embedded`` (``{sha256 of the input's UTF-8 bytes: times embedded in
a 200 reply}``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from docingest.errors import DependencyMissing
from docingest.providers.embedding.openai import cl100k_counter
from docingest.testing.mocks.common import Knobs, Ledger, add_fault_middleware

# model -> (native dimensions, accepts the `dimensions` parameter)
MODELS: dict[str, tuple[int, bool]] = {
    "text-embedding-3-small": (1536, True),
    "text-embedding-3-large": (3072, True),
    "text-embedding-ada-002": (1536, False),
}
PARAMETERS = frozenset({"input", "model", "dimensions", "encoding_format", "user"})
INPUT_INVALID = (
    "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference."
)
NO_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header "
    "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank "
    "username) if you're accessing the API from your browser and are prompted for a username and "
    "password. You can obtain an API key from https://platform.openai.com/account/api-keys."
)


def _vectors_of(raw: list[bytes], dimensions: int) -> np.ndarray:
    """``(len(raw), dimensions)`` float32: each byte string's SHAKE-256 read as uint32s,
    centred, L2-normalised."""
    digest = b"".join(hashlib.shake_256(b).digest(4 * dimensions) for b in raw)
    mat = np.frombuffer(digest, dtype="<u4").reshape(len(raw), dimensions).astype(np.float64)
    mat = mat / 2.0**31 - 1.0
    return (mat / np.sqrt(np.einsum("ij,ij->i", mat, mat))[:, None]).astype(np.float32)


def mock_vectors(texts: list[str], dimensions: int) -> np.ndarray:
    """``(len(texts), dimensions)`` float32: each text's SHAKE-256 (of its UTF-8 bytes) read as
    uint32s, centred, L2-normalised. Each row depends only on its own text, whatever the batch."""
    return _vectors_of([t.encode("utf-8", "surrogatepass") for t in texts], dimensions)


def mock_vector(text: str, dimensions: int) -> np.ndarray:
    """The mock's vector of one text (a row of :func:`mock_vectors`)."""
    return mock_vectors([text], dimensions)[0]


def cl100k_encoding() -> Any:
    """``bpe-openai``'s cl100k_base encoding (``encode_ordinary``, ``decode_bytes``): the
    mock's token ids and counts.

    Raises:
        DependencyMissing: ``bpe-openai`` is not installed (it comes with the ``mock`` extra).
    """
    try:
        import bpe_openai
    except ImportError as exc:
        raise DependencyMissing(
            "the OpenAI mock needs the bpe-openai package (cl100k_base token ids and counts): "
            "pip install 'docingest[mock]'"
        ) from exc
    return bpe_openai.get_encoding("cl100k_base")


@dataclass
class OpenAIMockConfig:
    """The OpenAI mock's settings.

    Attributes:
        knobs: fault injection (:class:`~docingest.testing.mocks.common.Knobs`).
        dimensions: forces the length of every reply's vectors (None: the asked or native one);
            the request's own ``dimensions`` is still checked against the model.
        max_input_tokens: tokens per input (OpenAI: 8,192).
        max_inputs: inputs per request (OpenAI: 2,048).
        max_request_tokens: tokens per request, all inputs summed (OpenAI: 300,000).
    """

    knobs: Knobs = field(default_factory=Knobs)
    dimensions: int | None = None
    max_input_tokens: int = 8192
    max_inputs: int = 2048
    max_request_tokens: int = 300_000


class Refusal:
    """A request OpenAI refuses: ``status`` and the ``error`` object of its body (returned by
    the checks below in place of their value)."""

    def __init__(
        self,
        status: int,
        message: str,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        self.status = status
        self.error = {"message": message, "type": type_, "param": param, "code": code}

    def response(self) -> Any:
        return JSONResponse({"error": self.error}, status_code=self.status)


def _json_kind(value: Any) -> str:
    """How OpenAI's validator names a JSON value's type in its messages."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if value is None:
        return "null"
    return "an object"


def _is_ids(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in value)


def parse_inputs(inputs: Any, max_inputs: int) -> list[str | list[int]] | Refusal:
    """The inputs of a request's ``input``: texts and token-id lists, in order; a 400
    :class:`Refusal` for a form the API does not accept, an empty input or list, or more than
    ``max_inputs`` inputs."""
    items: list[str | list[int]]
    if isinstance(inputs, str):
        items = [inputs]
    elif _is_ids(inputs) and inputs:  # one input as token ids
        items = [list(inputs)]
    elif isinstance(inputs, list) and inputs and all(isinstance(t, str) for t in inputs):
        items = list(inputs)
    elif isinstance(inputs, list) and inputs and all(_is_ids(t) for t in inputs):
        items = [list(t) for t in inputs]
    else:
        return Refusal(400, INPUT_INVALID)
    if len(items) > max_inputs:
        return Refusal(400, INPUT_INVALID)
    if any(len(t) == 0 for t in items):  # "" or [] as an input
        return Refusal(400, INPUT_INVALID)
    return items


def check_dimensions(body: dict[str, Any], model: str) -> int | None | Refusal:
    """The request's ``dimensions`` (None when not given), checked against ``model``; a 400
    :class:`Refusal` on a model without the parameter, a non-integer, below 1, above the
    model's native length."""
    dims = body.get("dimensions")
    if dims is None:
        return None
    native, supported = MODELS[model]
    if not supported:
        return Refusal(400, "This model does not support specifying dimensions.")
    if not isinstance(dims, int) or isinstance(dims, bool):
        return Refusal(
            400,
            f"Invalid type for 'dimensions': expected an integer, but got {_json_kind(dims)} instead.",
            param="dimensions",
            code="invalid_type",
        )
    if dims < 1:
        return Refusal(
            400,
            f"Invalid 'dimensions': integer below minimum value. Expected a value >= 1, "
            f"but got {dims} instead.",
            param="dimensions",
            code="integer_below_min_value",
        )
    if dims > native:
        return Refusal(
            400,
            f"Invalid 'dimensions': integer above maximum value. Expected a value <= {native}, "
            f"but got {dims} instead.",
            param="dimensions",
            code="integer_above_max_value",
        )
    return dims


def create_app(config: OpenAIMockConfig) -> Any:
    """The mock's ASGI app: ``POST /v1/embeddings`` (and ``/embeddings``), ``GET /health``,
    ``GET /_mock/stats``; every other path or method 404 ``Invalid URL``; every reply with an
    ``x-request-id``.

    Raises:
        DependencyMissing: ``bpe-openai`` is not installed (see :func:`cl100k_encoding`).
    """
    enc = cl100k_encoding()
    app = FastAPI(title="docingest mock OpenAI")
    ledger = Ledger()
    embedded: dict[str, int] = {}
    lock = threading.Lock()
    count_tokens = cl100k_counter()
    add_fault_middleware(app, config.knobs, ledger, malformed_body=b'{"object": "list", "data": [{"obj')

    async def invalid_url(request: Request, exc: Exception) -> Any:
        """A path or method the mock does not serve (Starlette's 404 and 405): OpenAI's 404."""
        return Refusal(404, f"Invalid URL ({request.method} {request.url.path})").response()

    app.add_exception_handler(StarletteHTTPException, invalid_url)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/_mock/stats")
    async def stats() -> dict[str, Any]:
        with lock:
            return {**ledger.stats(), "embedded": dict(embedded)}

    def token_bytes(ids: list[int]) -> bytes | Refusal:
        """The UTF-8 bytes of a token-id input (the text it encodes); a 400 :class:`Refusal`
        on an id cl100k_base does not define."""
        if any(i < 0 for i in ids):
            return Refusal(400, INPUT_INVALID)
        try:
            return bytes(enc.decode_bytes(ids))
        except (KeyError, ValueError, OverflowError):
            return Refusal(400, INPUT_INVALID)

    def embed(body: Any) -> Any:
        """The reply to one parsed request body (the mock's CPU work: checks, token counts,
        vectors), or the :class:`Refusal` of it."""
        if not isinstance(body, dict):
            return Refusal(400, "We could not parse the JSON body of your request.")
        unknown = sorted(set(body) - PARAMETERS)
        if unknown:
            return Refusal(400, f"Unrecognized request argument supplied: {unknown[0]}")
        model = body.get("model")
        if not model:
            return Refusal(400, "you must provide a model parameter")
        if not isinstance(model, str):
            return Refusal(
                400,
                f"Invalid type for 'model': expected a string, but got {_json_kind(model)} instead.",
                param="model",
                code="invalid_type",
            )
        if "input" not in body:
            return Refusal(
                400, "Missing required parameter: 'input'.", param="input", code="missing_required_parameter"
            )
        items = parse_inputs(body["input"], config.max_inputs)
        if isinstance(items, Refusal):
            return items
        fmt = body.get("encoding_format")
        if fmt is not None and fmt not in ("float", "base64"):
            return Refusal(
                400, f"Invalid value for 'encoding_format' = {fmt}. Supported values: ['float', 'base64']."
            )
        if model not in MODELS:
            return Refusal(
                404,
                f"The model `{model}` does not exist or you do not have access to it.",
                code="model_not_found",
            )
        asked = check_dimensions(body, model)
        if isinstance(asked, Refusal):
            return asked
        raw: list[bytes] = []
        counts: list[int] = []
        for item in items:
            if isinstance(item, str):
                raw.append(item.encode("utf-8", "surrogatepass"))
                n = count_tokens(item)
            else:
                decoded = token_bytes(item)
                if isinstance(decoded, Refusal):
                    return decoded
                raw.append(decoded)
                n = len(item)
            if n > config.max_input_tokens:
                return Refusal(
                    400,
                    f"This model's maximum context length is {config.max_input_tokens} tokens, however you "
                    f"requested {n} tokens ({n} in your prompt; 0 for the completion). Please reduce your "
                    "prompt; or completion length.",
                )
            counts.append(n)
        total = sum(counts)
        if total > config.max_request_tokens:
            return Refusal(
                400,
                f"Requested {total} tokens, max {config.max_request_tokens} tokens per request",
                type_="max_tokens_per_request",
                code="max_tokens_per_request",
            )
        dims = config.dimensions or asked or MODELS[model][0]
        as_b64 = fmt == "base64"
        data = []
        for i, vec in enumerate(_vectors_of(raw, dims)):
            emb: Any = base64.b64encode(vec.astype("<f4").tobytes()).decode() if as_b64 else vec.tolist()
            data.append({"object": "embedding", "index": i, "embedding": emb})
        with lock:
            for b in raw:
                h = hashlib.sha256(b).hexdigest()
                embedded[h] = embedded.get(h, 0) + 1
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "model": model,
                "usage": {"prompt_tokens": total, "total_tokens": total},
            },
            headers={
                "x-ratelimit-limit-requests": "10000",
                "x-ratelimit-remaining-requests": "9999",
                "x-ratelimit-reset-requests": "6ms",
                "x-ratelimit-limit-tokens": "10000000",
                "x-ratelimit-remaining-tokens": str(10_000_000 - total),
                "x-ratelimit-reset-tokens": "0s",
            },
        )

    def answer(raw: bytes) -> Any:
        """The reply to one request's body bytes."""
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):  # RecursionError: nested past the parser's depth
            return Refusal(400, "We could not parse the JSON body of your request.").response()
        reply = embed(body)
        return reply.response() if isinstance(reply, Refusal) else reply

    async def embeddings(request: Request) -> Any:
        if not request.headers.get("authorization", "").startswith("Bearer "):
            return Refusal(401, NO_KEY).response()
        # The work runs on a thread, not the event loop, so the loop meanwhile times the
        # requests that arrive and sends the answers that fall due (--latency-ms holds with
        # several requests in flight).
        return await run_in_threadpool(answer, await request.body())

    app.add_api_route("/v1/embeddings", embeddings, methods=["POST"])
    app.add_api_route("/embeddings", embeddings, methods=["POST"])
    return RequestIdMiddleware(app)


class RequestIdMiddleware:
    """ASGI wrapper giving every HTTP reply of ``app`` an ``x-request-id`` header, ``req_`` and
    32 hex digits (a random UUID's), as OpenAI's replies carry; it wraps the whole app, so the
    replies of its error middleware and of the fault middleware have one too."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = f"req_{uuid.uuid4().hex}".encode()

        async def send_with_id(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id)]
            await send(message)

        await self.app(scope, receive, send_with_id)
