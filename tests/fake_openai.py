"""A scripted OpenAI-compatible HTTP server on loopback, for the real `openai` client.

Each POST to /v1/chat/completions takes the next scripted answer: a JSON completion, an error
status, a raw (malformed) body, or a server-sent-events stream; optionally after a delay.
Requests are recorded for assertions.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Answer:
    status: int = 200
    body: Any = None  # JSON-serialisable body
    raw: bytes | None = None  # sent as is (malformed on purpose)
    stream: list[str] | None = None  # content pieces sent as SSE chunks
    delay_s: float = 0.0
    # Streams: after this many pieces, wait until the event is set (a test looks at the half-
    # written reply), then send the rest.
    pause_after: int = 0
    resume: threading.Event | None = None


def completion(
    content: str | None = None, tool_calls: list[dict[str, Any]] | None = None
) -> Answer:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = [
            {
                "id": f"call_{i}",
                "type": "function",
                "function": {"name": call["name"], "arguments": call["arguments"]},
            }
            for i, call in enumerate(tool_calls)
        ]
    return Answer(
        body={
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": "test-model",
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": "tool_calls" if tool_calls else "stop",
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
    )


def matches(*guideline_ids: str) -> Answer:
    return completion(
        json.dumps(
            {
                "matches": [
                    {"guideline_id": g, "applies": True, "rationale": "scripted"}
                    for g in guideline_ids
                ]
            }
        )
    )


def error(status: int, message: str = "scripted failure") -> Answer:
    return Answer(status=status, body={"error": {"message": message, "type": "test"}})


def streamed(*pieces: str) -> Answer:
    return Answer(stream=list(pieces))


@dataclass
class FakeOpenAI:
    answers: deque[Answer] = field(default_factory=deque)
    requests: list[dict[str, Any]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    def script(self, *answers: Answer) -> None:
        self.answers.extend(answers)

    @property
    def base_url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def start(self) -> FakeOpenAI:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                fake.requests.append(json.loads(self.rfile.read(length) or b"{}"))
                answer = fake.answers.popleft() if fake.answers else error(500, "no script")
                if answer.delay_s:
                    time.sleep(answer.delay_s)
                if answer.stream is not None:
                    self._stream(answer.stream, answer)
                    return
                body = answer.raw if answer.raw is not None else json.dumps(answer.body).encode()
                self.send_response(answer.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _stream(self, pieces: list[str], answer: Answer) -> None:
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.end_headers()
                for i, piece in enumerate(pieces):
                    if answer.resume is not None and i == answer.pause_after:
                        answer.resume.wait(30)
                    chunk = {
                        "id": "chatcmpl-test",
                        "object": "chat.completion.chunk",
                        "created": int(time.time()),
                        "model": "test-model",
                        "choices": [
                            {"index": 0, "delta": {"content": piece}, "finish_reason": None}
                        ],
                    }
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
