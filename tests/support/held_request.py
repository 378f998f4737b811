"""An HTTP request whose body is held back, on a raw socket: the headers go now, the body when
the test says.

The request carries `Expect: 100-continue`, and uvicorn answers `100 Continue` only when the
application first asks for the body. So `HeldRequest.start()` returns once the app has run the
route's guards (which need no body) and is waiting in the handler for the body: exactly the
window in which a slow client's authority can change.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx


@dataclass
class HeldResponse:
    status_code: int
    headers: dict[str, str]
    body: bytes
    set_cookies: list[str] = field(default_factory=list)  # every Set-Cookie, in order

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class HeldRequest:
    url: str
    body: bytes
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float = 20.0

    def start(self) -> None:
        """Send the headers; return when the app asks for the body (its guards have passed).
        If the app answers without asking for the body, that answer is kept for `finish()`."""
        parts = urlsplit(self.url)
        self._sock = socket.create_connection((parts.hostname, parts.port), timeout=self.timeout)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        headers = {
            "Host": parts.netloc,
            "Content-Length": str(len(self.body)),
            "Expect": "100-continue",
            "Connection": "close",
            **self.headers,
        }
        head = f"{self.method} {target} HTTP/1.1\r\n" + "".join(
            f"{name}: {value}\r\n" for name, value in headers.items()
        )
        self._sock.sendall(head.encode("latin-1") + b"\r\n")
        self._buffer = b""
        self._early: HeldResponse | None = None
        status, _ = self._read_head()
        if status != 100:
            self._early = self._read_response(status)

    @property
    def refused_before_body(self) -> HeldResponse | None:
        return self._early

    def finish(self) -> HeldResponse:
        """Send the body and read the response."""
        try:
            if self._early is not None:
                return self._early
            self._sock.sendall(self.body)
            status, _ = self._read_head()
            return self._read_response(status)
        finally:
            self._sock.close()

    # ---- a small HTTP/1.1 response reader ---------------------------------------------------

    def _fill(self) -> None:
        chunk = self._sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self._buffer += chunk

    def _read_head(self) -> tuple[int, dict[str, str]]:
        while b"\r\n\r\n" not in self._buffer:
            self._fill()
        head, _, self._buffer = self._buffer.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        self._headers = {}
        self._set_cookies: list[str] = []
        for line in lines:
            name, _, value = line.partition(":")
            self._headers[name.strip().lower()] = value.strip()
            if name.strip().lower() == "set-cookie":
                self._set_cookies.append(value.strip())
        return int(status_line.split()[1]), self._headers

    def _read_response(self, status: int) -> HeldResponse:
        headers = self._headers
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                while b"\r\n" not in self._buffer:
                    self._fill()
                size_line, _, self._buffer = self._buffer.partition(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                while len(self._buffer) < size + 2:
                    self._fill()
                body += self._buffer[:size]
                self._buffer = self._buffer[size + 2 :]
                if size == 0:
                    break
        else:
            length = int(headers.get("content-length", "0"))
            while len(self._buffer) < length:
                self._fill()
            body = self._buffer[:length]
        return HeldResponse(
            status_code=status, headers=headers, body=body, set_cookies=self._set_cookies
        )


def cookie_header(client: httpx.Client) -> str:
    """The cookies a browser with this jar sends to the app (cookies ignore ports)."""
    return "; ".join(f"{cookie.name}={cookie.value}" for cookie in client.cookies.jar)
