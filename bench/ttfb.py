#!/usr/bin/env python3
"""Time to first SSE byte, or to the first token, over one keep-alive HTTP/1.1 connection.

Usage: ttfb.py URL MODEL SAMPLES [CA_FILE] [--dialect openai|anthropic|gemini] [--token]
Prints 'p50_ms p99_ms'. The first request (which may open upstream connections) is
discarded so the figure is steady-state. --dialect picks the request body (a chat call, a
Messages call, or a Gemini streamGenerateContent call, whose URL names the model); --token
times until the first generated text ("Sluice", the mock's first word) rather than the
first byte, which is what a translated stream's extra work would delay."""
import http.client, json, ssl, sys, time
from urllib.parse import urlparse

args = [a for a in sys.argv[1:] if not a.startswith("--")]
flags = sys.argv[1:]
url, model, samples = args[0], args[1], int(args[2])
ca = args[3] if len(args) > 3 else None
dialect = flags[flags.index("--dialect") + 1] if "--dialect" in flags else "openai"
until_token = "--token" in flags
parts = urlparse(url)
if parts.scheme == "https":
    conn = http.client.HTTPSConnection(parts.hostname, parts.port, context=ssl.create_default_context(cafile=ca))
else:
    conn = http.client.HTTPConnection(parts.hostname, parts.port)
if dialect == "anthropic":
    body = {"model": model, "max_tokens": 64, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
elif dialect == "gemini":
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
else:
    body = {"model": model, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
body = json.dumps(body)
path = parts.path + ("?" + parts.query if parts.query else "")
timings = []
for index in range(samples + 1):
    start = time.perf_counter()
    conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    seen = response.read1(1)
    while until_token and b"Sluice" not in seen:
        more = response.read1(4096)
        if not more:
            break
        seen += more
    elapsed = time.perf_counter() - start
    response.read()
    if response.status != 200 or not seen or (until_token and b"Sluice" not in seen):
        sys.exit(f"bad response {response.status}: {seen[:200]!r}")
    if index > 0:
        timings.append(elapsed * 1000)
timings.sort()
print(f"{timings[len(timings) // 2]:.3f} {timings[min(len(timings) - 1, int(len(timings) * 0.99))]:.3f}")
