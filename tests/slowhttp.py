"""Loopback HTTP servers for tests (:class:`Loopback`), and one that answers
as slowly as a bad partner can (:class:`Trickle`): the status line at once,
then one header line every ``interval`` seconds for ``lines`` lines, then 200
(each read of the client's socket gets a byte in time, so a per-read timeout
never fires)."""
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Loopback:
    """A threaded HTTP server on a free loopback port serving ``Handler`` at
    ``url``; quiet, and gone at :meth:`close`."""

    def serve(self, handler, path: str) -> None:
        handler.log_message = lambda *args: None
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}{path}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Trickle(Loopback):
    def __init__(self, interval: float = 0.5, lines: int = 40):
        self.interval, self.lines = interval, lines
        self.calls: list[float] = []  # when each request arrived (time.monotonic)
        self.cut: list[float] = []  # when a client gave up on an answer (monotonic)
        me = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                me.calls.append(time.monotonic())
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                    self.wfile.flush()
                    for i in range(me.lines):
                        time.sleep(me.interval)
                        self.wfile.write(f"X-Still-Thinking: {i}\r\n".encode())
                        self.wfile.flush()
                    self.wfile.write(b"Content-Length: 0\r\n\r\n")
                    self.wfile.flush()
                except OSError:
                    me.cut.append(time.monotonic())
                self.close_connection = True

        self.serve(Handler, "/slow")
