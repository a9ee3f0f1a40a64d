"""Mock of OpenAI's embeddings API (``POST /v1/embeddings``), for tests and development.

The same client code talks to it and to OpenAI (``OPENAI_BASE_URL=http://127.0.0.1:8002/v1``).
Each input text gets a deterministic unit vector (from the SHAKE-256 of the text,
so the same text gives the same vector in any batch position); ``usage`` holds real
token counts (cl100k_base via ``bpe-openai``, else one per 3 bytes). The work per request is
kept small (vectors computed for the whole batch at once, counts by the Rust tokenizer) and
runs on a thread, not the event loop, so ``--latency-ms`` holds when several requests are in
flight. Inputs over
``max_input_tokens`` get OpenAI's 400 "maximum context length" error.
``dimensions`` (the knob) forces the returned length whatever is asked.

``GET /_mock/stats`` adds ``embedded`` (``{sha256: times embedded in a 200 reply}``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from docingest.providers.embedding.openai import cl100k_counter
from docingest.testing.mocks.common import Knobs, Ledger, add_fault_middleware

DEFAULT_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}


def mock_vectors(texts: list[str], dimensions: int) -> np.ndarray:
    """``(len(texts), dimensions)`` float32: each text's SHAKE-256 read as uint32s, centred,
    L2-normalised. Each row depends only on its own text, whatever the batch."""
    raw = b"".join(
        hashlib.shake_256(t.encode("utf-8", "surrogatepass")).digest(4 * dimensions) for t in texts
    )
    mat = np.frombuffer(raw, dtype="<u4").reshape(len(texts), dimensions).astype(np.float64)
    mat = mat / 2.0**31 - 1.0
    return (mat / np.sqrt(np.einsum("ij,ij->i", mat, mat))[:, None]).astype(np.float32)


def mock_vector(text: str, dimensions: int) -> np.ndarray:
    """The mock's vector of one text (a row of :func:`mock_vectors`)."""
    return mock_vectors([text], dimensions)[0]


@dataclass
class OpenAIMockConfig:
    knobs: Knobs = field(default_factory=Knobs)
    dimensions: int | None = None
    max_input_tokens: int = 8192
    max_inputs: int = 2048


def create_app(config: OpenAIMockConfig) -> Any:
    app = FastAPI(title="docingest mock OpenAI")
    ledger = Ledger()
    embedded: dict[str, int] = {}
    lock = threading.Lock()
    count_tokens = cl100k_counter()
    add_fault_middleware(app, config.knobs, ledger, malformed_body=b'{"object": "list", "data": [{"obj')

    def error(
        status: int,
        message: str,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
    ) -> Any:
        return JSONResponse(
            {"error": {"message": message, "type": type_, "param": param, "code": code}}, status_code=status
        )

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/_mock/stats")
    async def stats() -> dict[str, Any]:
        with lock:
            return {**ledger.stats(), "embedded": dict(embedded)}

    def answer(raw: bytes) -> Any:
        """The reply to one request's body: the mock's CPU work (JSON, token counts, vectors)."""
        try:
            body = json.loads(raw)
        except ValueError:
            return error(400, "We could not parse the JSON body of your request.")
        if not isinstance(body, dict):
            return error(400, "We could not parse the JSON body of your request.")
        inputs = body.get("input")
        model = body.get("model")
        if not model:
            return error(400, "you must provide a model parameter", param="model")
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs or not all(isinstance(t, str) for t in inputs):
            return error(400, "'$.input' is invalid. Please check the API reference.", param="input")
        if len(inputs) > config.max_inputs:
            return error(400, f"'$.input' must have at most {config.max_inputs} items.", param="input")
        counts = []
        for t in inputs:
            if not t:
                return error(400, "'$.input' is invalid: empty string.", param="input")
            n = count_tokens(t)
            if n > config.max_input_tokens:
                return error(
                    400,
                    f"This model's maximum context length is {config.max_input_tokens} "
                    f"tokens, however you requested {n} tokens. Please reduce your prompt.",
                )
            counts.append(n)
        dims = config.dimensions or body.get("dimensions") or DEFAULT_DIMENSIONS.get(model, 1536)
        as_b64 = body.get("encoding_format") == "base64"
        data = []
        for i, vec in enumerate(mock_vectors(inputs, int(dims))):
            emb: Any = base64.b64encode(vec.astype("<f4").tobytes()).decode() if as_b64 else vec.tolist()
            data.append({"object": "embedding", "index": i, "embedding": emb})
        with lock:
            for t in inputs:
                h = hashlib.sha256(t.encode("utf-8", "surrogatepass")).hexdigest()
                embedded[h] = embedded.get(h, 0) + 1
        total = sum(counts)
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

    async def embeddings(request: Request) -> Any:
        if not request.headers.get("authorization", "").startswith("Bearer "):
            return error(401, "You didn't provide an API key.", code="invalid_api_key")
        # The work runs on a thread, not the event loop, so the loop meanwhile times the
        # requests that arrive and sends the answers that fall due (--latency-ms holds with
        # several requests in flight).
        return await run_in_threadpool(answer, await request.body())

    app.add_api_route("/v1/embeddings", embeddings, methods=["POST"])
    app.add_api_route("/embeddings", embeddings, methods=["POST"])
    return app
