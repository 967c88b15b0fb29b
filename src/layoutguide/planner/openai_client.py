"""An OpenAI-compatible chat-completions client over HTTP (standard library only), with hard limits.

Guarantees (docs/planner.md, "Network behaviour and guarantees"):

* ``timeout`` is a deadline for the whole attempt (connect, send, headers, body, redirects), not for each read: a
  server that drips bytes or says nothing is cut off when it passes, by closing the socket from a timer.
* Credentials (``Authorization``) go only to the scheme, host and port of ``base_url``: a redirect there is
  followed (at most :data:`MAX_REDIRECTS`), a redirect anywhere else is refused before anything is sent to it.
* A response body over :data:`MAX_RESPONSE_BYTES` is refused, not read.
* Connection errors, timeouts, HTTP 429 and 5xx are retried ``max_retries`` times with exponential backoff; other
  HTTP errors, redirects elsewhere and oversized responses fail at once.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import ssl
import threading
import time
import urllib.parse
from email.message import Message

from .result import PlannerError

MAX_RESPONSE_BYTES = 4 * 1024 * 1024  # a chat completion with a layout is a few KB
MAX_REDIRECTS = 5
_REDIRECTS = (301, 302, 303, 307, 308)
_ERROR_DETAIL_BYTES = 2048


class _Retryable(Exception):
    """An attempt failed in a way worth retrying; ``retry_after`` is the server's hint in seconds."""

    def __init__(self, message: str, retry_after: float = 0.0):
        super().__init__(message)
        self.retry_after = retry_after


def _origin(url: str) -> tuple[str, str, int]:
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:  # a port that is not a number
        port = -1
    return scheme, (parts.hostname or "").lower(), port


class _Exchange:
    """One HTTP request and its response under a deadline: a timer shuts the socket down when the deadline passes,
    so no read, however slow the server, outlives it."""

    def __init__(self, url: str, deadline: float):
        parts = urllib.parse.urlsplit(url)
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        scheme, host, port = _origin(url)
        remaining = max(deadline - time.monotonic(), 0.001)
        if scheme == "https":
            self.conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                host, port, timeout=remaining, context=ssl.create_default_context()
            )
        else:
            self.conn = http.client.HTTPConnection(host, port, timeout=remaining)
        self.expired = threading.Event()
        self.timer = threading.Timer(remaining, self._expire)
        self.timer.daemon = True

    def _expire(self) -> None:
        self.expired.set()
        sock = self.conn.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def run(self, body: bytes, headers: dict[str, str]) -> tuple[int, str, Message, bytes]:
        self.timer.start()
        try:
            try:
                self.conn.connect()
            except TimeoutError:
                raise
            except OSError as e:
                raise _Retryable(f"cannot connect: {e}") from None
            if self.expired.is_set():  # the timer fired while connecting, before there was a socket to shut
                raise TimeoutError
            self.conn.request("POST", self.path, body=body, headers=headers)
            response = self.conn.getresponse()
            limit = MAX_RESPONSE_BYTES if 200 <= response.status < 300 else _ERROR_DETAIL_BYTES
            data = response.read(limit + 1)
            if self.expired.is_set():
                raise TimeoutError
            if len(data) > limit and 200 <= response.status < 300:
                raise PlannerError(
                    f"the response is over {MAX_RESPONSE_BYTES} bytes, more than a chat completion with a layout; "
                    "not read further"
                )
            return response.status, response.reason, response.headers, data[:limit]
        except (OSError, http.client.HTTPException):
            if self.expired.is_set():
                raise TimeoutError from None
            raise
        finally:
            self.timer.cancel()
            self.conn.close()


class OpenAIChatBackend:
    """An OpenAI-compatible chat-completions server over HTTP (standard library only).

    ``POST {base_url}/chat/completions`` with ``{model, messages, temperature}``. Each attempt must finish within
    ``timeout`` seconds (a deadline for the whole request). Connection errors, timeouts, HTTP 429 and 5xx are retried
    ``max_retries`` times with exponential backoff (``backoff * 2**attempt`` seconds, or the server's
    ``Retry-After`` when shorter than a minute); other HTTP errors fail at once. So one :meth:`chat` takes at most
    about ``(max_retries + 1) * timeout`` plus the backoff.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout: float = 60,
        max_retries: int = 3,
        backoff: float = 1.0,
        temperature: float = 0.0,
    ):
        if not base_url or not re.match(r"https?://[^/?#]", base_url):
            raise PlannerError(f"base_url must be an http(s) URL such as https://api.openai.com/v1, got {base_url!r}")
        if _origin(base_url)[2] < 0:
            raise PlannerError(f"base_url {base_url!r} has a port that is not a number")
        if not model:
            raise PlannerError("an LLM model name is required: set llm_model (e.g. 'gpt-4o')")
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not 0 < timeout < float("inf"):
            raise PlannerError(f"timeout must be a positive number of seconds, got {timeout!r}")
        if not isinstance(max_retries, int) or max_retries < 0:
            raise PlannerError(f"max_retries must be 0 or more, got {max_retries!r}")
        self.base_url = base_url.rstrip("/")
        self.url = self.base_url + "/chat/completions"
        self.model = model
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.timeout, self.max_retries, self.backoff, self.temperature = timeout, max_retries, backoff, temperature
        self.model_id = f"openai:{self.model}@{self.base_url}"

    def chat(self, messages: list[dict[str, str]]) -> str:
        body = json.dumps({"model": self.model, "messages": messages, "temperature": self.temperature}).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last, delay = "", 0.0
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(delay)
            delay = self.backoff * 2**attempt
            try:
                raw = self._post(body, headers)
            except _Retryable as e:
                last, delay = str(e), max(delay, e.retry_after)
                continue
            return self._content(raw)
        raise PlannerError(f"POST {self.url} failed after {self.max_retries + 1} attempts; last error: {last}")

    def _post(self, body: bytes, headers: dict[str, str]) -> bytes:
        """One attempt: the response body of a 2xx answer, following redirects to the same origin only."""
        deadline = time.monotonic() + self.timeout
        url = self.url
        for _ in range(MAX_REDIRECTS + 1):
            try:
                status, reason, response_headers, data = _Exchange(url, deadline).run(body, headers)
            except TimeoutError:
                raise _Retryable(f"timed out: no complete response within {self.timeout} s") from None
            except (OSError, http.client.HTTPException) as e:  # reset connections, incomplete reads
                raise _Retryable(f"connection error: {type(e).__name__}: {e}") from None
            if status in _REDIRECTS:
                url = self._redirect_target(url, response_headers.get("Location"))
                continue
            if 200 <= status < 300:
                return data
            self._http_error(status, reason, response_headers, data)
        raise PlannerError(f"POST {self.url}: more than {MAX_REDIRECTS} redirects; not followed further")

    def _redirect_target(self, url: str, location: str | None) -> str:
        if not location:
            raise PlannerError(f"POST {url}: a redirect without a Location; set base_url to the server's address")
        target = urllib.parse.urljoin(url, location)
        if _origin(target) != _origin(self.url):
            raise PlannerError(
                f"POST {url} redirected to {target}, another scheme, host or port; not followed, so the API key is "
                "only ever sent to the server given: set base_url to the new address if you trust it"
            )
        return target

    def _http_error(self, status: int, reason: str, headers: Message, data: bytes) -> None:
        text = data.decode("utf-8", "replace").strip()
        detail = f": {text[:300]}" if text else ""
        if status == 429 or status >= 500:
            retry_after = (headers.get("Retry-After") or "").strip()
            wait = float(retry_after) if retry_after.isdigit() and int(retry_after) < 60 else 0.0
            raise _Retryable(f"HTTP {status} {reason}{detail}", wait)
        hint = ""
        if status in (401, 403):
            hint = " (check the API key: api_key, or the OPENAI_API_KEY environment variable)"
        elif status in (400, 404):
            hint = " (check llm_model and base_url)"
        raise PlannerError(f"POST {self.url} failed: HTTP {status} {reason}{detail}{hint}; not retried")

    def _content(self, raw: bytes) -> str:
        try:
            data = json.loads(raw)
            content = data["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError, RecursionError):
            raise PlannerError(f"POST {self.url}: the response is not a chat completion: {raw[:500]!r}") from None
        if isinstance(content, list):  # content parts
            content = "".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
        if not isinstance(content, str):
            raise PlannerError(f"POST {self.url}: the chat completion has no text content: {raw[:500]!r}")
        return content
