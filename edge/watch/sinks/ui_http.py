"""The live page's HTTP server: stdlib ``ThreadingHTTPServer``, GET only, nothing fetched from elsewhere.

Routes: ``/`` the page (``ui_page.html``, with the current state inlined so
it draws at once), ``/api/state`` the state as JSON, ``/events`` the state
as Server-Sent Events on every change (at most ``SSE_MIN_INTERVAL`` apart),
``/img/<seq>.jpg`` thumbnails, ``/heat/<seq>.png`` heat maps. The
Content-Security-Policy forbids anything not from this server, so the page
cannot depend on a CDN by accident. With a token, every request needs it
(``?token=``, ``Authorization: Bearer`` or the cookie the page gets on its
first visit with ``?token=``).
"""
from __future__ import annotations

import hmac
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qs, urlsplit

SSE_MIN_INTERVAL = 0.5   # s between two pushes to one page: a 100 fps line must not make the page redraw 100x/s
SSE_HEARTBEAT = 15.0
MAX_SSE_CLIENTS = 16     # one thread each
CSP = ("default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
COOKIE = "edgeinspect_ui"
_IMG = re.compile(r"^/(img|heat)/(\d+)\.(jpg|png)$")


def page_template():
    return resources.files("edge.watch.sinks").joinpath("ui_page.html").read_text(encoding="utf-8")


class UiServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, handler, page):
        super().__init__(addr, handler)
        self.page = page
        self.stop_event = threading.Event()
        self.requests = 0
        self.sse_clients = 0
        self.template = page_template()
        self.lock = threading.Lock()

    @property
    def stopping(self):
        return self.stop_event.is_set()


class Handler(BaseHTTPRequestHandler):
    server_version = "edgeinspect-watch"
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # the result log is the record; no access log on stderr
        pass

    def _authorized(self, query):
        token = self.server.page.token
        if not token:
            return True, False
        given = (query.get("token") or [None])[0]
        if given is not None:
            return hmac.compare_digest(given.encode(), token.encode()), True
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer ") and hmac.compare_digest(auth[7:].strip().encode(), token.encode()):
            return True, False
        for part in self.headers.get("Cookie", "").split(";"):
            k, _, v = part.strip().partition("=")
            if k == COOKIE and hmac.compare_digest(v.encode(), token.encode()):
                return True, False
        return False, False

    def _send(self, code, body, ctype, extra=()):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("Referrer-Policy", "no-referrer")
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        srv = self.server
        with srv.lock:
            srv.requests += 1
        url = urlsplit(self.path)
        ok, via_query = self._authorized(parse_qs(url.query))
        if not ok:
            self._send(401, b"edgeinspect watch: this page needs the token (?token=...)\n", "text/plain; charset=utf-8")
            return
        extra = []
        if via_query:  # the page's images and event stream then authenticate with the cookie
            extra.append(("Set-Cookie", f"{COOKIE}={srv.page.token}; HttpOnly; SameSite=Strict; Path=/"))
        path = url.path
        if path in ("/", "/index.html"):
            state = json.dumps(srv.page.state(), default=str).replace("</", "<\\/")
            body = srv.template.replace("/*INITIAL_STATE*/null", state).encode()
            self._send(200, body, "text/html; charset=utf-8", extra)
        elif path == "/api/state":
            self._send(200, json.dumps(srv.page.state(), default=str).encode(), "application/json", extra)
        elif path == "/events" and self.command == "HEAD":  # the headers only: a HEAD must not stream forever
            self._send(200, b"", "text/event-stream", extra)
        elif path == "/events":
            self._events()
        elif path == "/favicon.ico":
            self._send(204, b"", "image/x-icon")
        else:
            m = _IMG.match(path)
            data = srv.page.image(m.group(1), int(m.group(2))) if m else None
            if data is None:
                self._send(404, b"not found (results leave the page as new ones arrive)\n", "text/plain; charset=utf-8")
            else:
                self._send(200, data, "image/png" if m.group(3) == "png" else "image/jpeg", extra)

    def _events(self):
        srv, page = self.server, self.server.page
        with srv.lock:
            if srv.sse_clients >= MAX_SSE_CLIENTS:
                busy = True
            else:
                busy = False
                srv.sse_clients += 1
        if busy:
            self._send(503, b"too many live pages open\n", "text/plain; charset=utf-8", (("Retry-After", "5"),))
            return
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Accel-Buffering", "no")
            self.end_headers()
            self.close_connection = True
            version, quiet = -1, 0.0
            while not srv.stopping:
                now_version = page.wait_change(version, SSE_MIN_INTERVAL)
                if now_version != version:
                    version = now_version
                    quiet = 0.0
                    self.wfile.write(b"data: " + json.dumps(page.state(), default=str).encode() + b"\n\n")
                    self.wfile.flush()
                    if srv.stopping:
                        break
                    # Coalesce: at most one push per SSE_MIN_INTERVAL, whatever the frame rate.
                    srv.stop_event.wait(SSE_MIN_INTERVAL)
                else:
                    quiet += SSE_MIN_INTERVAL
                    if quiet >= SSE_HEARTBEAT:
                        quiet = 0.0
                        self.wfile.write(b": keep-alive\n\n")
                        self.wfile.flush()
        except OSError:
            pass  # the page was closed
        finally:
            with srv.lock:
                srv.sse_clients -= 1


def serve(page, host, port):
    srv = UiServer((host, port), Handler, page)
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.2}, name="edgeinspect-ui",
                     daemon=True).start()
    return srv
