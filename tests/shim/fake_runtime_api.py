#!/usr/bin/env python3
"""A throwaway Lambda Runtime API for trying the shim by hand (not used by ctest).

Serves the given events one by one on GET /2018-06-01/runtime/invocation/next, prints
every POST it receives (path, error-type header, body excerpt) with the time since the
server started, and exits after all events were answered (or on an init error).

  python3 tests/shim/fake_runtime_api.py --port 9701 '{"a":1}' 'hello'
  AWS_LAMBDA_RUNTIME_API=127.0.0.1:9701 build/bin/ephemera-shim /bin/cat

With --unix PATH it serves on a unix socket instead (EPHEMERA_RUNTIME_SOCKET=PATH); any
other request (an Invoke call, say) gets 202 {"status":"OK"} and is printed too.
--deadline-ms sets how long after GET /next each event's deadline is (default 30000).
"""
import argparse
import http.server
import os
import socketserver
import sys
import threading
import time
import uuid

START = time.monotonic()


def stamp():
    return "%8.1f ms" % ((time.monotonic() - START) * 1000)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        srv = self.server
        if not self.path.endswith("/runtime/invocation/next"):
            self.send_error(404)
            return
        print(stamp(), "GET /next", flush=True)
        srv.first_next.set()
        with srv.lock:
            if not srv.events:
                event = None
            else:
                event = srv.events.pop(0)
        if event is None:
            srv.done.set()
            time.sleep(3600)  # long poll forever, like a daemon with no work
            return
        rid = str(uuid.uuid4())
        body = event.encode()
        self.send_response(200)
        self.send_header("Lambda-Runtime-Aws-Request-Id", rid)
        self.send_header("Lambda-Runtime-Deadline-Ms",
                         str(int(time.time() * 1000) + srv.deadline_ms))
        self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
        self.send_header("Lambda-Runtime-Invoked-Function-Arn",
                         "arn:aws:lambda:us-east-1:000000000000:function:fake")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        kind = self.path.rsplit("/", 1)[-1]
        print(stamp(), "POST", self.path, self.headers.get("Lambda-Runtime-Function-Error-Type", ""),
              repr(body[:300]), "(%d bytes)" % len(body), flush=True)
        out = b'{"status":"OK"}'
        self.send_response(202)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
        if kind == "error" and self.path.endswith("/init/error"):
            self.server.done.set()
        if "/runtime/invocation/" not in self.path:
            return  # not an answer to an event (an Invoke call)
        with self.server.lock:
            self.server.answered += 1
            if self.server.answered >= self.server.total:
                self.server.done.set()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=9701)
    p.add_argument("--unix", help="serve on this unix socket instead of 127.0.0.1:PORT")
    p.add_argument("--deadline-ms", type=int, default=30000)
    p.add_argument("events", nargs="*", default=['{"hello":"world"}'])
    a = p.parse_args()
    if a.unix:
        class UnixServer(socketserver.ThreadingUnixStreamServer):
            def get_request(self):
                conn, _ = super().get_request()
                return conn, ("unix", 0)  # BaseHTTPRequestHandler wants a (host, port)
        if os.path.exists(a.unix):
            os.unlink(a.unix)
        srv = UnixServer(a.unix, Handler)
        os.chmod(a.unix, 0o777)
    else:
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    srv.daemon_threads = True
    srv.deadline_ms = a.deadline_ms
    srv.events = list(a.events)
    srv.total = len(a.events)
    srv.answered = 0
    srv.lock = threading.Lock()
    srv.done = threading.Event()
    srv.first_next = threading.Event()
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    print(stamp(), "listening on", a.unix or "127.0.0.1:%d" % a.port, flush=True)
    srv.done.wait(120)
    time.sleep(0.2)
    sys.exit(0)


if __name__ == "__main__":
    main()
