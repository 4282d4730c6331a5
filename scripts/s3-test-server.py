"""A local S3 API server for recforge's tests: moto's S3 implementation behind a werkzeug server.

moto checks If-Match / If-None-Match and then writes without a lock, so two concurrent conditional PUTs can both
succeed (measured: 1 lost update in 320 racing compare-and-swaps from 8 clients); real S3 decides them
atomically. Serialising requests here gives the tests S3's semantics, so a race test fails only on recforge's
own bugs. Usage: s3-test-server.py PORT (binds 127.0.0.1; prints 'ready' once listening).
"""
import sys
import threading

from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server

app = DomainDispatcherApplication(create_backend_app)
lock = threading.Lock()


def serialized(environ, start_response):
    with lock:
        return list(app(environ, start_response))


server = make_server("127.0.0.1", int(sys.argv[1]), serialized, threaded=True)
print("ready", flush=True)
server.serve_forever()
