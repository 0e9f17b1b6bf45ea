"""The UI behind the API keys: a login form that keeps the key in a cookie the API guard checks.

A browser cannot send `Authorization: Bearer` on page loads or on an `EventSource`, so with API
keys set, `UIKeyCookie` (plain ASGI, placed outside `GuardMiddleware`) does three things on
`/ui` paths only, and nothing on any other path:

- `GET /ui/login` shows the form; `POST /ui/login` checks the key (constant time, against
  every key), then sets it as an `HttpOnly; SameSite=Strict; Path=/ui` cookie and redirects
  to the page asked for; a wrong key gets the form again with 401. `/ui/logout` clears it.
- A `/ui` request with the cookie and no Authorization header gets the header made from the
  cookie, so the guard authenticates it exactly as an API request (same keys, same errors).
- A page request with neither is redirected to the login form instead of a JSON 401.

Without keys it passes everything through. This module knows cookies and forms, not pages.
"""

from __future__ import annotations

import hmac
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from agentrt.server.ui.render import render

__all__ = ["UIKeyCookie", "COOKIE"]

COOKIE = "agentrt_ui_key"
_MAX_FORM = 4096


def _safe_next(value: str) -> str:
    parts = urlsplit(value or "")
    if parts.scheme or parts.netloc or not parts.path.startswith("/ui") or "\\" in value:
        return "/ui/traces"
    return value


async def _respond(send: Any, status: int, body: bytes = b"",
                   headers: list[tuple[str, str]] | None = None) -> None:
    raw = [(b"content-length", str(len(body)).encode()), (b"cache-control", b"no-store")]
    raw += [(k.encode(), v.encode("latin-1")) for k, v in headers or []]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class UIKeyCookie:
    """ASGI middleware: key cookie for `/ui` (see the module docstring).

    Args:
        app: the wrapped app (the guard and the routes).
        keys: the server's API keys; empty = no authentication, pass through.
    """

    def __init__(self, app: Any, keys: list[str]):
        self.app = app
        self.keys = [k.encode() for k in keys]

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not self.keys or not (path == "/ui" or path.startswith("/ui/")):
            await self.app(scope, receive, send)
            return
        if path == "/ui/login":
            await self._login(scope, receive, send)
            return
        if path == "/ui/logout":
            await _respond(send, 303, headers=[
                ("location", "/ui/login"),
                ("set-cookie", f"{COOKIE}=; Path=/ui; Max-Age=0; HttpOnly; SameSite=Strict")])
            return
        headers = [(k, v) for k, v in scope["headers"]]
        names = {k.lower() for k, _ in headers}
        key = self._cookie(headers)
        if b"authorization" not in names and key:
            scope = {**scope, "headers": headers + [(b"authorization", f"Bearer {key}".encode())]}
        elif b"authorization" not in names and self._is_page(scope):
            target = path + (f"?{scope['query_string'].decode('latin-1')}"
                             if scope.get("query_string") else "")
            await _respond(send, 303, headers=[("location",
                                                f"/ui/login?next={quote(target, safe='')}")])
            return
        await self.app(scope, receive, send)

    @staticmethod
    def _is_page(scope: dict) -> bool:
        return scope["method"] == "GET" and not scope["path"].startswith(("/ui/api/",
                                                                          "/ui/static/"))

    @staticmethod
    def _cookie(headers: list[tuple[bytes, bytes]]) -> str | None:
        for k, v in headers:
            if k.lower() == b"cookie":
                jar: SimpleCookie = SimpleCookie()
                try:
                    jar.load(v.decode("latin-1"))
                except Exception:  # noqa: BLE001 - a malformed cookie header is no key
                    continue
                if COOKIE in jar and jar[COOKIE].value:
                    return unquote(jar[COOKIE].value)
        return None

    def _valid(self, given: str) -> bool:
        ok = False
        for key in self.keys:  # every key is compared, so timing does not reveal which matched
            ok |= hmac.compare_digest(key, given.encode("utf-8", "surrogateescape"))
        return ok

    async def _login(self, scope: dict, receive: Any, send: Any) -> None:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        nxt = _safe_next((query.get("next") or ["/ui/traces"])[0])
        html = [("content-type", "text/html; charset=utf-8")]
        if scope["method"] != "POST":
            body = render("login.html", next=nxt, failed=False).encode()
            await _respond(send, 200, body, html)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > _MAX_FORM:
                await _respond(send, 413, b"form too large")
                return
            if not message.get("more_body", False):
                break
        form = parse_qs(b"".join(chunks).decode("utf-8", "replace"))
        given = (form.get("key") or [""])[0].strip()
        nxt = _safe_next((form.get("next") or [nxt])[0])
        if not given or not self._valid(given):
            body = render("login.html", next=nxt, failed=True).encode()
            await _respond(send, 401, body, html)
            return
        await _respond(send, 303, headers=[
            ("location", nxt),
            ("set-cookie", f"{COOKIE}={quote(given, safe='')}; Path=/ui; HttpOnly; "
                           "SameSite=Strict")])
