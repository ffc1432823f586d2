"""A scripted OpenAI-compatible chat server for tests, demos and benchmarks.

It speaks just enough HTTP/1.1 (keep-alive, Content-Length bodies) to serve
``POST /v1/chat/completions`` and ``GET /v1/models`` on loopback. What it answers is decided by a
Python *handler* that sees each request (texts and decoded images) and returns a :class:`Reply`:
a text answer, an HTTP error with headers, a delay, or a dropped connection. It counts requests
and the peak number in flight, so tests can check retries and concurrency limits.

Run standalone (e.g. for ``benchmarks/``)::

    python -m arrpo.testing.scripted_server --port 8011 --latency 0.1
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import inspect
import io
import json
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Union

DEFAULT_ANSWER = '{"rank": [1, 2], "reason": "Image 1 follows the rubric better."}'


@dataclass
class Reply:
    """What the server does with one request."""

    text: str | None = DEFAULT_ANSWER
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None  # a raw JSON body overriding the chat-completion envelope
    raw: bytes | None = None  # the exact bytes of the body (e.g. JSON no encoder would write)
    delay: float = 0.0
    drop: bool = False  # close the connection without any answer
    prompt_tokens: int = 100
    completion_tokens: int = 20


@dataclass
class ChatRequest:
    """One incoming request, with helpers to read what the client sent."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any

    @property
    def messages(self) -> list[dict]:
        return list((self.body or {}).get("messages", []))

    @property
    def model(self) -> str | None:
        return (self.body or {}).get("model")

    @cached_property
    def texts(self) -> list[str]:
        """Every text part of every message, in order."""
        out = []
        for message in self.messages:
            content = message.get("content")
            if isinstance(content, str):
                out.append(content)
            elif isinstance(content, list):
                out += [p.get("text", "") for p in content if p.get("type") == "text"]
        return out

    @property
    def text(self) -> str:
        return "\n".join(self.texts)

    @cached_property
    def image_bytes(self) -> list[bytes]:
        """Decoded bytes of every ``image_url`` data URL, in order."""
        out = []
        for message in self.messages:
            content = message.get("content")
            if not isinstance(content, list):
                continue
            for part in content:
                if part.get("type") == "image_url":
                    url = part["image_url"]["url"]
                    out.append(base64.b64decode(url.split(",", 1)[1]))
        return out

    def images(self) -> list[Any]:
        """The images as PIL RGB images (needs Pillow)."""
        from PIL import Image

        return [Image.open(io.BytesIO(b)).convert("RGB") for b in self.image_bytes]


Handler = Callable[[ChatRequest], Union[Reply, str, Awaitable[Union[Reply, str]]]]


def fixed_answer(text: str = DEFAULT_ANSWER, latency: float = 0.0) -> Handler:
    """A handler that always answers ``text`` after ``latency`` seconds."""

    def handler(_: ChatRequest) -> Reply:
        return Reply(text=text, delay=latency)

    return handler


class ScriptedVLMServer:
    """Serve a handler on 127.0.0.1 in a background thread (use as a context manager).

    Attributes after start: ``base_url`` (``http://127.0.0.1:PORT/v1``), ``port``; statistics:
    ``requests`` (chat requests received), ``in_flight``, ``max_in_flight``, ``statuses``
    (Counter of status codes sent, ``"drop"`` for dropped connections), ``seen`` (the requests).
    """

    def __init__(self, handler: Handler, host: str = "127.0.0.1", port: int = 0, keep: bool = True):
        self.handler = handler
        self.host = host
        self.port = port
        self.keep = keep
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.statuses: Counter = Counter()
        self.seen: list[ChatRequest] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> ScriptedVLMServer:
        self._thread = threading.Thread(target=self._run, name="scripted-vlm", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("scripted server did not start")
        return self

    def stop(self) -> None:
        if self._loop and self._server and self._loop.is_running():
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread:
            self._thread.join(5)

    async def _shutdown(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        current = asyncio.current_task()
        pending = [t for t in asyncio.all_tasks() if t is not current]
        if pending:
            await asyncio.wait(pending, timeout=5)

    def __enter__(self) -> ScriptedVLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._serve_connection, self.host, self.port, limit=2**26)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()

    async def serve_forever(self) -> None:
        """Serve in the current event loop (standalone mode)."""
        self._server = await asyncio.start_server(
            self._serve_connection, self.host, self.port, limit=2**26
        )
        self.port = self._server.sockets[0].getsockname()[1]
        async with self._server:
            await self._server.serve_forever()

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self._writers.add(writer)
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    break
                keep_open = await self._dispatch(request, writer)
                if not keep_open:
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()

    async def _dispatch(self, request: ChatRequest, writer: asyncio.StreamWriter) -> bool:
        if request.method == "GET" and request.path.rstrip("/").endswith("/models"):
            await _write(writer, 200, {"object": "list", "data": [{"id": "scripted", "object": "model"}]})
            return True
        if not request.path.rstrip("/").endswith("/chat/completions"):
            await _write(writer, 404, {"error": {"message": f"no route {request.path}"}})
            return True
        with self._lock:
            self.requests += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            if self.keep:
                self.seen.append(request)
        try:
            reply = self.handler(request)
            if inspect.isawaitable(reply):
                reply = await reply
            if isinstance(reply, str):
                reply = Reply(text=reply)
            if reply.delay:
                await asyncio.sleep(reply.delay)
            if reply.drop:
                self.statuses["drop"] += 1
                writer.transport.abort()
                return False
            body = reply.body
            if reply.raw is not None:
                body = reply.raw
            elif body is None and reply.status == 200:
                body = _completion(request.model, reply)
            elif body is None:
                body = {"error": {"message": f"scripted error {reply.status}", "code": reply.status}}
            self.statuses[reply.status] += 1
            await _write(writer, reply.status, body, reply.headers)
            return True
        finally:
            with self._lock:
                self.in_flight -= 1


def _completion(model: str | None, reply: Reply) -> dict:
    return {
        "id": f"chatcmpl-{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model or "scripted",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply.text},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens,
            "total_tokens": reply.prompt_tokens + reply.completion_tokens,
        },
    }


async def _read_request(reader: asyncio.StreamReader) -> ChatRequest | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0") or 0)
    raw = await reader.readexactly(length) if length else b""
    try:
        body = json.loads(raw) if raw else None
    except json.JSONDecodeError:
        body = None
    return ChatRequest(method=method, path=path, headers=headers, body=body)


_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 429: "Too Many Requests",
            500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


async def _write(writer: asyncio.StreamWriter, status: int, body: Any, headers: dict | None = None):
    payload = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
    headers = dict(headers or {})
    content_type = next((headers.pop(k) for k in list(headers) if k.lower() == "content-type"), "application/json")
    head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}",
            f"Content-Type: {content_type}", f"Content-Length: {len(payload)}"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload)
    await writer.drain()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Scripted OpenAI-compatible chat server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8011)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--answer", default=DEFAULT_ANSWER, help="text of every answer")
    args = parser.parse_args(argv)
    server = ScriptedVLMServer(fixed_answer(args.answer, args.latency), args.host, args.port, keep=False)
    print(f"serving on http://{args.host}:{args.port}/v1", flush=True)
    asyncio.run(server.serve_forever())


if __name__ == "__main__":
    main()
