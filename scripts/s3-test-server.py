"""A local S3 API server for recforge's tests: moto's S3 implementation behind a werkzeug server.

moto checks If-Match / If-None-Match and then writes without a lock, so two concurrent conditional PUTs can both
succeed (measured: 1 lost update in 320 racing compare-and-swaps from 8 clients); real S3 decides them
atomically. Serialising requests here gives the tests S3's semantics, so a race test fails only on recforge's
own bugs. Usage: s3-test-server.py PORT (binds 127.0.0.1; prints 'ready' once listening).

Slow requests, for crash tests: S3_TEST_DELAYS='[{"method": "PUT", "pattern": "/versions/[^/]+/part-", "ms": 3000}]'
holds each matching request (method, and a regular expression searched in the path) that long before serving it,
outside the lock, so other clients go on meanwhile. Each held request prints 'delay METHOD PATH' on stdout when it
starts waiting: a test can kill a client while its upload is in flight.
"""
import json
import os
import re
import sys
import threading
import time

from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server

app = DomainDispatcherApplication(create_backend_app)
lock = threading.Lock()
delays = [
    (d["method"].upper(), re.compile(d["pattern"]), d["ms"] / 1000.0)
    for d in json.loads(os.environ.get("S3_TEST_DELAYS") or "[]")
]


def serialized(environ, start_response):
    method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
    for m, pattern, seconds in delays:
        if method == m and pattern.search(path):
            print(f"delay {method} {path}", flush=True)
            time.sleep(seconds)
            break
    with lock:
        return list(app(environ, start_response))


server = make_server("127.0.0.1", int(sys.argv[1]), serialized, threaded=True)
print("ready", flush=True)
server.serve_forever()
