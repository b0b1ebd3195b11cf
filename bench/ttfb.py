#!/usr/bin/env python3
"""Time to first SSE byte over one keep-alive HTTP/1.1 connection.

Usage: ttfb.py URL MODEL SAMPLES [CA_FILE]. Prints 'p50_ms p99_ms'. The first request (which
may open upstream connections) is discarded so the figure is steady-state."""
import http.client, ssl, sys, time, json
from urllib.parse import urlparse

url, model, samples = sys.argv[1], sys.argv[2], int(sys.argv[3])
ca = sys.argv[4] if len(sys.argv) > 4 else None
parts = urlparse(url)
if parts.scheme == "https":
    context = ssl.create_default_context(cafile=ca)
    conn = http.client.HTTPSConnection(parts.hostname, parts.port, context=context)
else:
    conn = http.client.HTTPConnection(parts.hostname, parts.port)
body = json.dumps({"model": model, "stream": True, "messages": [{"role": "user", "content": "hi"}]})
timings = []
for index in range(samples + 1):
    start = time.perf_counter()
    conn.request("POST", parts.path, body=body, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    first = response.read1(1)
    elapsed = time.perf_counter() - start
    response.read()
    if response.status != 200 or not first:
        sys.exit(f"bad response {response.status}")
    if index > 0:
        timings.append(elapsed * 1000)
timings.sort()
print(f"{timings[len(timings) // 2]:.3f} {timings[min(len(timings) - 1, int(len(timings) * 0.99))]:.3f}")
