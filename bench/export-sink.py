#!/usr/bin/env python3
"""A loopback sink for bench/quick.sh's BENCH_EXPORT=1 and BENCH_TRACE=1: takes audit export
and OTLP trace posts (HTTP/1.1), answers 204, and on SIGTERM prints how many posts, records
and spans it took."""
import json
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

counts = {"posts": 0, "records": 0, "spans": 0}


class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        counts["posts"] += 1
        document = json.loads(body)
        counts["records"] += len(document.get("records", []))
        for resource in document.get("resourceSpans", []):
            for scope in resource.get("scopeSpans", []):
                counts["spans"] += len(scope.get("spans", []))
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def stop(*_):
    print(f"export sink: {counts['posts']} posts, {counts['records']} records, {counts['spans']} spans", flush=True)
    sys.exit(0)


signal.signal(signal.SIGTERM, stop)
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()
