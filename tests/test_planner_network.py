"""The OpenAI-compatible planner backend against hostile local servers (127.0.0.1, a thread per test): slow drip,
silence, redirects to another port, garbage, oversized bodies, 500s. Deadlines are short (0.5-1 s) so every test
is fast; each asserts a clear PlannerError (or a good answer), never a hang or a traceback. docs/planner.md,
"Network behaviour and guarantees", cites these tests.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable

import pytest
from typer.testing import CliRunner

from layoutguide.cli import app
from layoutguide.planner import MAX_RESPONSE_BYTES, OpenAIChatBackend, PlannerError, get_planner

MESSAGES = [{"role": "user", "content": "a cat to the left of a dog"}]
REPLY = "cat: (20, 100, 220, 400)\ndog: (280, 100, 480, 400)"


def completion(content: str = REPLY) -> bytes:
    return json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()


def response(status: str, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    head = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", "Connection: close"]
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class HostileServer:
    """A raw TCP server on 127.0.0.1 that reads each HTTP request and hands the socket to ``behave(sock, request)``;
    ``requests`` records (headers text, body) of every request received."""

    def __init__(self, behave: Callable[[socket.socket, dict], None]):
        self.behave = behave
        self.requests: list[dict] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                continue
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        try:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, body = data.split(b"\r\n\r\n", 1)
            text = head.decode("latin-1")
            length = next(
                (
                    int(line.split(":", 1)[1])
                    for line in text.split("\r\n")
                    if line.lower().startswith("content-length")
                ),
                0,
            )
            while len(body) < length:
                body += conn.recv(65536)
            request = {"head": text, "path": text.split(" ")[1], "body": body}
            self.requests.append(request)
            self.behave(conn, request)
        except OSError:  # the client hung up (deadline tests)
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(1)
        self.listener.close()


@pytest.fixture
def serve():
    servers: list[HostileServer] = []

    def start(behave: Callable[[socket.socket, dict], None]) -> HostileServer:
        servers.append(HostileServer(behave))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def backend(url: str, **kw) -> OpenAIChatBackend:
    options = {"api_key": "sk-secret", "timeout": 0.5, "max_retries": 0, "backoff": 0.01, **kw}
    return OpenAIChatBackend(url, "m", **options)


def timed(fn: Callable[[], object]) -> tuple[object, float]:
    start = time.monotonic()
    try:
        out: object = fn()
    except PlannerError as e:
        out = e
    return out, time.monotonic() - start


# ============================================================================================ deadline (#17.4)
def test_a_server_dripping_the_body_fails_at_the_deadline(serve):
    def drip(sock, request):
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        for _ in range(100):  # one byte every 0.05 s: each read is quick, the whole takes 5 s
            sock.sendall(b" ")
            time.sleep(0.05)

    server = serve(drip)
    error, elapsed = timed(lambda: backend(server.url).chat(MESSAGES))
    assert isinstance(error, PlannerError) and "timed out" in str(error) and "0.5 s" in str(error)
    assert elapsed < 1.5


def test_a_server_dripping_its_headers_fails_at_the_deadline(serve):
    def drip(sock, request):
        for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"x" * 200:
            sock.sendall(bytes([byte]))
            time.sleep(0.02)

    server = serve(drip)
    error, elapsed = timed(lambda: backend(server.url).chat(MESSAGES))
    assert isinstance(error, PlannerError) and "timed out" in str(error) and elapsed < 1.5


def test_a_silent_server_fails_at_the_deadline_on_every_attempt(serve):
    server = serve(lambda sock, request: time.sleep(3))
    error, elapsed = timed(lambda: backend(server.url, max_retries=1).chat(MESSAGES))
    assert isinstance(error, PlannerError) and "failed after 2 attempts" in str(error) and "timed out" in str(error)
    assert len(server.requests) == 2 and elapsed < 2.5  # two 0.5 s attempts and a short backoff


def test_timeout_must_be_a_positive_number():
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(PlannerError, match="timeout must be a positive number"):
            OpenAIChatBackend("http://127.0.0.1:1/v1", "m", timeout=bad)
    with pytest.raises(PlannerError, match="timeout only applies to the openai planner"):
        get_planner("rule", timeout=5)


# ============================================================================================ redirects (#17.3)
def test_credentials_never_reach_another_port_through_a_redirect(serve):
    elsewhere = serve(lambda sock, request: sock.sendall(response("200 OK", completion())))
    for status in ("302 Found", "307 Temporary Redirect", "308 Permanent Redirect"):
        target = f"{elsewhere.url}/chat/completions"
        server = serve(lambda sock, request, s=status, t=target: sock.sendall(response(s, b"", {"Location": t})))
        with pytest.raises(PlannerError, match="another scheme, host or port; not followed") as info:
            backend(server.url).chat(MESSAGES)
        assert "sk-secret" not in str(info.value)
    assert elsewhere.requests == []  # nothing at all was sent there, so no credentials either


def test_a_redirect_on_the_same_server_is_followed_with_the_key(serve):
    def behave(sock, request):
        if request["path"] == "/v1/chat/completions":
            sock.sendall(response("307 Temporary Redirect", b"", {"Location": "/v2/chat/completions"}))
        else:
            sock.sendall(response("200 OK", completion("moved")))

    server = serve(behave)
    assert backend(server.url).chat(MESSAGES) == "moved"
    assert [r["path"] for r in server.requests] == ["/v1/chat/completions", "/v2/chat/completions"]
    assert all("Authorization: Bearer sk-secret" in r["head"] for r in server.requests)


def test_endless_redirects_stop(serve):
    server = serve(lambda sock, request: sock.sendall(response("302 Found", b"", {"Location": request["path"]})))
    with pytest.raises(PlannerError, match="more than 5 redirects"):
        backend(server.url).chat(MESSAGES)


# ============================================================================================ bodies and statuses
def test_garbage_and_oversized_bodies_are_clear_errors(serve):
    server = serve(lambda sock, request: sock.sendall(response("200 OK", b"\x00\xff<html>not json" * 50)))
    with pytest.raises(PlannerError, match="not a chat completion"):
        backend(server.url).chat(MESSAGES)
    deep = serve(lambda sock, request: sock.sendall(response("200 OK", b"[" * 200_000)))
    with pytest.raises(PlannerError, match="not a chat completion"):
        backend(deep.url).chat(MESSAGES)

    def huge(sock, request):
        sock.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {MAX_RESPONSE_BYTES * 4}\r\n\r\n".encode())
        for _ in range(MAX_RESPONSE_BYTES * 4 // 65536):
            sock.sendall(b"x" * 65536)

    big = serve(huge)
    error, elapsed = timed(lambda: backend(big.url, timeout=5).chat(MESSAGES))
    assert isinstance(error, PlannerError) and f"over {MAX_RESPONSE_BYTES} bytes" in str(error) and elapsed < 3


def test_500s_are_retried_then_succeed_or_run_out(serve):
    answers = iter([response("500 Internal Server Error", b"boom"), response("503 Unavailable", b"")])
    server = serve(lambda sock, request: sock.sendall(next(answers, response("200 OK", completion()))))
    assert backend(server.url, max_retries=2).chat(MESSAGES) == REPLY and len(server.requests) == 3
    down = serve(lambda sock, request: sock.sendall(response("500 Internal Server Error", b"down")))
    with pytest.raises(
        PlannerError, match="failed after 3 attempts; last error: HTTP 500 Internal Server Error: down"
    ):
        backend(down.url, max_retries=2).chat(MESSAGES)


def test_a_401_names_the_real_settings_not_a_cli_flag(serve):
    server = serve(lambda sock, request: sock.sendall(response("401 Unauthorized", b'{"error": "bad key"}')))
    with pytest.raises(PlannerError) as info:
        backend(server.url, max_retries=2).chat(MESSAGES)
    message = str(info.value)
    assert "HTTP 401" in message and "api_key" in message and "OPENAI_API_KEY" in message
    assert "--api-key" not in message and "sk-secret" not in message and len(server.requests) == 1


# ============================================================================================ CLI (#17.4, #17.8)
runner = CliRunner()


@pytest.mark.slow
def test_cli_plan_timeout_cuts_a_silent_server(serve, tmp_path, monkeypatch):
    monkeypatch.setenv("LAYOUTGUIDE_PLAN_CACHE", str(tmp_path))
    arrivals: list[float] = []

    def silent_then_refuse(sock, request):
        arrivals.append(time.monotonic())
        if len(arrivals) == 1:
            time.sleep(5)  # silent: only the deadline ends this attempt
        else:
            sock.sendall(response("401 Unauthorized", b"no"))

    server = serve(silent_then_refuse)
    args = ["plan", "a cat", "--planner", "openai", "--base-url", server.url, "--llm-model", "m", "--timeout", "0.3"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "HTTP 401" in result.stderr and "Traceback" not in result.output
    assert len(arrivals) == 2 and arrivals[1] - arrivals[0] < 2  # 0.3 s deadline + 1 s backoff, not 5 s of silence


def test_cli_generate_plans_with_an_llm_model_url_and_timeout(serve, tmp_path, monkeypatch):
    """``generate --plan openai`` reaches the server with the model named (the model fails with a 401 here, so
    nothing loads); before, ``generate`` had no option to name the model and could never plan with openai."""
    monkeypatch.setenv("LAYOUTGUIDE_PLAN_CACHE", str(tmp_path))
    server = serve(lambda sock, request: sock.sendall(response("401 Unauthorized", b"no")))
    args = ["generate", "--prompt", "a cat", "--plan", "openai", "--base-url", server.url, "--llm-model", "gpt-x"]
    result = runner.invoke(app, [*args, "--timeout", "2", "--out", str(tmp_path / "x.png")])
    assert result.exit_code == 2 and "HTTP 401" in result.stderr and "Traceback" not in result.output
    assert json.loads(server.requests[0]["body"])["model"] == "gpt-x"


def test_cli_generate_planner_options_need_an_llm_planner(tmp_path):
    out = str(tmp_path / "x.png")
    result = runner.invoke(app, ["generate", "--prompt", "a cat", "--llm-model", "gpt-x", "--out", out])
    assert result.exit_code == 2 and "use them with --plan" in result.stderr
    result = runner.invoke(app, ["generate", "--prompt", "a cat", "--plan", "rule", "--timeout", "5", "--out", out])
    assert result.exit_code == 2 and "timeout only applies to the openai planner" in result.stderr
    assert "Traceback" not in result.output
