"""OpenAI-compatible embeddings (OpenAI, Azure OpenAI, Ollama, vLLM, TEI) via the official client.

Contract (OpenAI API reference, ``POST /v1/embeddings``): request
``{"input": [str, ...], "model": str, "dimensions"?: int, "encoding_format"?: "float"|"base64"}``;
reply ``{"data": [{"index": i, "embedding": [...] | base64}], "usage": {"prompt_tokens": n}}``.
Limits of OpenAI's embedding models: 2,048 inputs and 300,000 tokens per
request, 8,192 tokens per input (all configurable). Rate-limit replies are 429
with ``Retry-After`` (seconds) and ``x-ratelimit-reset-requests`` /
``x-ratelimit-reset-tokens`` (durations such as ``1s``, ``6m0s``, ``20ms``).

Error mapping (each try goes through the shared rate limiter first):

- 429: every worker backs off (``limiter.block``) for ``Retry-After``, else the
  ``x-ratelimit-reset-*`` time, else exponential backoff; retried.
- 5xx, connection errors, timeouts, a malformed body: retried with backoff here,
  then ``EmbeddingUnavailable`` (carrying ``retry_after``) for the worker to reschedule.
- 400 "maximum context length": ``EmbeddingInputTooLong`` (permanent, never retried).
- other 4xx: ``EmbeddingRejected`` (permanent).
- a reply with another count or length of vectors: ``EmbeddingDimensionMismatch``.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import logging
import re
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from docingest.backoff import backoff_seconds
from docingest.errors import (
    EmbeddingDimensionMismatch,
    EmbeddingInputTooLong,
    EmbeddingRejected,
    EmbeddingUnavailable,
)
from docingest.providers.embedding.batching import BatchingEmbedder, BatchLimits

if TYPE_CHECKING:
    from docingest.providers.ratelimit import RateLimiter

log = logging.getLogger("docingest.providers.embedding.openai")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def parse_duration(value: str | None) -> float | None:
    """Seconds of an OpenAI reset header (``"1s"``, ``"6m0s"``, ``"20ms"``, ``"1h2m3.5s"``) or
    a plain number of seconds; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    parts = _DURATION.findall(value)
    if not parts:
        return None
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(n) * scale[u] for n, u in parts)


def retry_after_seconds(headers: Any) -> float | None:
    """The wait a reply asks for: ``retry-after-ms``, ``retry-after`` (seconds or HTTP date),
    else the longest ``x-ratelimit-reset-*`` of an exhausted (or unreported) budget."""
    if headers is None:
        return None
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    if (ra := headers.get("retry-after")) is not None:
        secs = parse_duration(ra)
        if secs is None:
            from email.utils import parsedate_to_datetime

            try:
                secs = max(0.0, parsedate_to_datetime(ra).timestamp() - time.time())
            except (TypeError, ValueError):
                secs = None
        if secs is not None:
            return secs
    waits = []
    for kind in ("requests", "tokens"):
        reset = parse_duration(headers.get(f"x-ratelimit-reset-{kind}"))
        remaining = headers.get(f"x-ratelimit-remaining-{kind}")
        if reset is not None and (remaining is None or remaining.strip() in ("0", "0.0")):
            waits.append(reset)
    return max(waits) if waits else None


@functools.cache
def cl100k_counter() -> Callable[[str], int]:
    """A function giving a text's cl100k_base token count (the OpenAI embedding models'
    tokenizer, offline from ``bpe-openai``); without that package, one token per 3 UTF-8 bytes.

    It calls the package's Rust tokenizer's ``count`` (no token list is built: a quarter less
    time than ``len(encode_ordinary(text))``, the same counts), and ``encode_ordinary`` for a
    text the Rust side cannot take (lone surrogates, which it replaces as tiktoken does).
    """
    try:
        import bpe_openai
    except ImportError:
        return lambda t: (len(t.encode("utf-8", "surrogatepass")) + 2) // 3
    encoding = bpe_openai.get_encoding("cl100k_base")
    fast = getattr(getattr(encoding, "_backend", None), "count", None)

    def count(text: str) -> int:
        if fast is not None:
            try:
                return int(fast(text))
            except UnicodeEncodeError:
                pass
        return len(encoding.encode_ordinary(text))

    return count


def _is_context_length(exc: Any) -> bool:
    body = getattr(exc, "body", None)
    text = str(body if body is not None else exc).lower()
    return "context_length" in text or "maximum context length" in text or "too many tokens" in text


class OpenAIEmbedder(BatchingEmbedder):
    """Embeddings through ``openai.OpenAI(...).embeddings.create``.

    Args:
        model: model name sent and stored in ``embed_model``.
        dimensions: the database column's length; sent as ``dimensions`` when ``send_dimensions``.
        base_url: e.g. ``http://127.0.0.1:8002/v1`` (None: the client's default, OpenAI).
        api_key: the key (local servers accept any).
        limiter: ``SharedRateLimiter`` (or ``LocalBackoff``): every try acquires from it.
        attempts: tries per batch before ``EmbeddingUnavailable``.
        client_tag: sent as ``X-Docingest-Worker`` (lets the mock attribute requests).
    """

    def __init__(
        self,
        *,
        model: str,
        dimensions: int,
        base_url: str | None,
        api_key: str | None,
        limiter: RateLimiter,
        limits: BatchLimits,
        concurrency: int = 4,
        timeout_seconds: float = 60.0,
        attempts: int = 6,
        send_dimensions: bool | None = None,
        backoff_base_seconds: float = 0.5,
        backoff_max_seconds: float = 30.0,
        client_tag: str | None = None,
    ) -> None:
        # Twice the lanes of the requests in flight: the HTTP pool below caps these at
        # `concurrency`, and a spare lane's request waits, built, for the next free connection.
        super().__init__(limits=limits, concurrency=concurrency, lanes=2 * concurrency)
        self.model = model
        self.dimensions = dimensions
        self.base_url = base_url
        self.limiter = limiter
        self.attempts = attempts
        self.send_dimensions = (
            model.startswith("text-embedding-3") if send_dimensions is None else send_dimensions
        )
        self.backoff_base = backoff_base_seconds
        self.backoff_max = backoff_max_seconds
        import openai  # heavy SDK: imported by the embedder that needs it

        self._openai = openai
        headers = {"X-Docingest-Worker": client_tag} if client_tag else None
        import httpx2  # the SDK's HTTP client: `post(..., cast_to=httpx2.Response)` returns the reply

        self._response_type = httpx2.Response
        # At most `concurrency` requests in flight: httpx's pool holds a request until one of
        # its `concurrency` connections is free (without a pool timeout: a wait for a
        # connection is not a provider failure).
        timeout = httpx2.Timeout(timeout_seconds, pool=None)
        http_client = openai.DefaultHttpxClient(
            limits=httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
            timeout=timeout,
        )
        self.client = openai.OpenAI(
            api_key=api_key or "unused",
            base_url=base_url,
            max_retries=0,
            timeout=timeout,
            default_headers=headers,
            http_client=http_client,
        )

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Each text's cl100k_base token count, or an upper bound where that cannot change a
        batch; 0 for a blank text (refused before sending).

        A cl100k token is at least one byte, so a text's UTF-8 length bounds its count. A text
        of at most ``min(max_tokens // max_inputs, max_input_tokens)`` bytes is counted by its
        length: it passes the per-input check, and a full batch of such texts stays within
        ``max_tokens``. Longer texts are counted exactly (:func:`cl100k_counter`, about 30 us
        each, holding the GIL the request lanes need), and so is every text when the rate
        limiter meters tokens per minute, which needs the real count.
        """
        count = cl100k_counter()
        if getattr(self.limiter, "meters_tokens", True):
            return [count(t) if t.strip() else 0 for t in texts]
        short = min(self.limits.max_tokens // self.limits.max_inputs, self.limits.max_input_tokens)
        out = []
        for t in texts:
            if not t.strip():
                out.append(0)
                continue
            n = len(t.encode("utf-8", "surrogatepass"))
            out.append(n if n <= short else count(t))
        return out

    def _body(self, texts: list[str]) -> dict[str, Any]:
        body: dict[str, Any] = {"input": texts, "model": self.model, "encoding_format": "base64"}
        if self.send_dimensions:
            body["dimensions"] = self.dimensions
        return body

    def _prepare_batch(self, texts: list[str]) -> bytes:
        """The request body as JSON bytes, encoded on the planner thread."""
        return json.dumps(self._body(texts)).encode("ascii")  # non-ASCII as JSON \u escapes

    def _embed_batch(self, texts: list[str], tokens: int, prepared: bytes | None = None) -> list[Any]:
        """Send one batch (``prepared``: its JSON body) with retries; the reply's embeddings,
        checked (count, order, length) but not decoded: :meth:`_finish` decodes them."""
        oa = self._openai
        last: Exception | None = None
        wait_hint: float | None = None
        content = prepared if prepared is not None else self._prepare_batch(texts)
        for attempt in range(self.attempts):
            self.limiter.acquire(tokens)
            self.requests_sent += 1
            try:
                # The SDK's request for "undocumented endpoints" (its README): the same client,
                # auth, timeout and error classes as `embeddings.create`, without its
                # per-item transform of the input list (GIL time per request) or its
                # model objects; the body is the wire contract above.
                raw = self.client.post(
                    "/embeddings",
                    cast_to=self._response_type,
                    content=content,
                    options={
                        "security": {"bearer_auth": True},
                        "headers": {"Content-Type": "application/json"},
                    },
                )
                embeddings = self._checked_embeddings(json.loads(raw.content), len(texts))
            except oa.RateLimitError as exc:
                wait_hint = retry_after_seconds(exc.response.headers) or self._backoff(attempt)
                self.limiter.block(wait_hint)
                last = exc
                continue
            except oa.BadRequestError as exc:
                if _is_context_length(exc):
                    raise EmbeddingInputTooLong(f"the provider refused an input as too long: {exc}") from exc
                raise EmbeddingRejected(f"the provider refused the request (400): {exc}") from exc
            except oa.APIStatusError as exc:
                if exc.status_code < 500 and exc.status_code not in (408, 409):
                    raise EmbeddingRejected(
                        f"the provider refused the request ({exc.status_code}): {exc}"
                    ) from exc
                wait_hint = retry_after_seconds(exc.response.headers)
                last = exc
            except (oa.APIConnectionError, oa.APITimeoutError, ValueError, KeyError, TypeError) as exc:
                wait_hint, last = None, exc  # network trouble or a malformed body
            else:
                self._respect_budget(raw.headers)
                return embeddings
            time.sleep(wait_hint if wait_hint is not None else self._backoff(attempt))
        raise EmbeddingUnavailable(
            f"embedding request failed {self.attempts} times; last: {type(last).__name__}: {last}",
            retry_after=wait_hint,
        )

    def _backoff(self, attempt: int) -> float:
        return backoff_seconds(attempt, base=self.backoff_base, cap=self.backoff_max)

    def _respect_budget(self, headers: Any) -> None:
        """A reply saying the request budget is spent: every worker waits for its reset."""
        for kind in ("requests", "tokens"):
            remaining = headers.get(f"x-ratelimit-remaining-{kind}")
            reset = parse_duration(headers.get(f"x-ratelimit-reset-{kind}"))
            if remaining is not None and remaining.strip() == "0" and reset:
                self.limiter.block(reset)

    def _mismatch(self, got: int) -> None:
        raise EmbeddingDimensionMismatch(
            f"the provider returned vectors of {got} dimensions; the database "
            f"column has {self.dimensions} (UPLOAD_PIPELINE_EMBEDDING_DIMENSIONS)"
        )

    def _checked_embeddings(self, reply: Any, count: int) -> list[Any]:
        """The embeddings of a reply body ``{"data": [{"index", "embedding"}]}``, in input
        order, each checked for length without decoding it (a base64 string of
        ``dimensions`` float32 has ``4 * ceil(4 * dimensions / 3)`` characters).

        Raises:
            KeyError, TypeError, ValueError: a malformed body (transient).
            EmbeddingDimensionMismatch: another count or length of vectors than asked.
        """
        data = sorted(reply["data"], key=lambda d: int(d["index"]))
        if len(data) != count or [int(d["index"]) for d in data] != list(range(count)):
            raise EmbeddingDimensionMismatch(f"the provider returned {len(data)} vectors for {count} inputs")
        embeddings = [d["embedding"] for d in data]
        b64_chars = 4 * -(-4 * self.dimensions // 3)
        for e in embeddings:
            if isinstance(e, str):
                if len(e) != b64_chars:
                    self._mismatch(len(base64.b64decode(e)) // 4)
            elif not isinstance(e, list) or not all(isinstance(x, (int, float)) for x in e):
                raise TypeError("an embedding is neither base64 nor a list of numbers")
            elif len(e) != self.dimensions:
                self._mismatch(len(e))
        return embeddings

    def _finish(self, reply: list[Any]) -> np.ndarray:
        """Decode checked embeddings into unit vectors, ``(count, dimensions)`` float32.

        Raises:
            EmbeddingUnavailable: a base64 string of the right length that is not base64
                (transient: the job is retried).
        """
        try:
            if all(isinstance(e, str) for e in reply):  # base64 little-endian float32
                joined = b"".join(base64.b64decode(e, validate=True) for e in reply)
                out = np.frombuffer(joined, dtype="<f4").reshape(len(reply), self.dimensions)
            else:  # a float list per input (or, from an odd server, a mix)
                out = np.stack(
                    [
                        np.frombuffer(base64.b64decode(e, validate=True), dtype="<f4")
                        if isinstance(e, str)
                        else np.asarray(e, dtype=np.float32)
                        for e in reply
                    ]
                )
        except (ValueError, binascii.Error) as exc:
            raise EmbeddingUnavailable(f"the provider returned an undecodable embedding: {exc}") from exc
        out = out.astype(np.float32)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1.0, norms)
