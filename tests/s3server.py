"""Servers the object-storage tests start themselves, each on 127.0.0.1 only and a free port:

- `S3Server`: moto's standalone S3-protocol server (a real HTTP server speaking S3, not a mocked
  client), with `env()` giving the AWS variables a poolcli child reads (dummy credentials,
  `AWS_ENDPOINT_URL`);
- `FaultProxy`: a small HTTP proxy in front of it that answers the requests it is told to fail
  with 503 Slow Down (the first N, or those whose path matches), and counts the bytes it passes
  on (what a ranged read really fetched);
- `HttpFolder`: a folder served read-only over HTTP (`http.server`), Range requests included.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import logging
import os
import re
import threading
import uuid
from functools import partial
from pathlib import Path

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
HOST = "127.0.0.1"


class S3Server:
    """moto's S3 server on 127.0.0.1 (started by `start`, stopped by `stop`)."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.server = ThreadedMotoServer(ip_address=HOST, port=0, verbose=False)

    def start(self) -> S3Server:
        self.server.start()
        self.port = self.server.get_host_and_port()[1]
        return self

    def stop(self) -> None:
        self.server.stop()

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.port}"

    def env(self, endpoint: str | None = None) -> dict[str, str]:
        """The variables every AWS tool reads: dummy credentials and this server (or `endpoint`)."""
        return {**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint or self.endpoint}

    def filesystem(self):
        """An s3fs file system of this server (the tests' own view of the bucket)."""
        import s3fs

        return s3fs.S3FileSystem(key=CREDENTIALS["AWS_ACCESS_KEY_ID"], secret=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                                 endpoint_url=self.endpoint, skip_instance_cache=True, use_listings_cache=False)

    def new_bucket(self) -> str:
        name = f"test-{uuid.uuid4().hex[:12]}"
        self.filesystem().mkdir(name)
        return name


class _Quiet(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # no line per request on stderr
        pass


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:  # a client that hung up (a killed run)
        pass


class FaultProxy:
    """An HTTP proxy to `upstream` on 127.0.0.1 that fails requests with 503 (S3's throttling
    answer, which clients retry): the first `fail_first` requests, and every one whose path
    matches `fail_path` (a regular expression). `forwarded_bytes` counts response bodies passed on."""

    def __init__(self, upstream_port: int, *, fail_first: int = 0, fail_path: str | None = None) -> None:
        self.upstream_port = upstream_port
        self.fail_first, self.fail_path = fail_first, fail_path
        self.failed = self.requests = self.forwarded_bytes = 0
        self.lock = threading.Lock()
        proxy = self

        class Handler(_Quiet):
            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                with proxy.lock:
                    proxy.requests += 1
                    fail = proxy.failed < proxy.fail_first or (
                        proxy.fail_path is not None and re.search(proxy.fail_path, self.path) is not None)
                    if fail:
                        proxy.failed += 1
                if fail:
                    message = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
                    self.send_response(503)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(message)))
                    self.end_headers()
                    self.wfile.write(message)
                    return
                connection = http.client.HTTPConnection(HOST, proxy.upstream_port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection",)}
                connection.request(self.command, self.path, body=body, headers=headers)
                answer = connection.getresponse()
                data = answer.read()
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date"):
                        self.send_header(key, value)
                length = answer.getheader("Content-Length") if self.command == "HEAD" else None
                self.send_header("Content-Length", length or str(len(data)))  # HEAD: the object's size
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                    with proxy.lock:
                        proxy.forwarded_bytes += len(data)
                connection.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any

        self.server = _QuietServer((HOST, 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.port}"

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


class _RangeFiles(http.server.SimpleHTTPRequestHandler):
    """`http.server`'s files, with single-range GETs (`Range: bytes=a-b`) answered 206."""

    protocol_version = "HTTP/1.1"
    served = [0]

    def log_message(self, *args) -> None:
        pass

    def send_head(self):
        wanted = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        path = Path(self.translate_path(self.path))
        if wanted is None or not path.is_file():
            return super().send_head()
        size = path.stat().st_size
        start, stop = int(wanted[1]), min(int(wanted[2] or size - 1), size - 1)
        handle = open(path, "rb")  # noqa: SIM115 (http.server's send_head returns the open file)
        handle.seek(start)
        self.send_response(206)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Range", f"bytes {start}-{stop}/{size}")
        self.send_header("Content-Length", str(stop - start + 1))
        self.end_headers()
        self.remaining = stop - start + 1
        return handle

    def copyfile(self, source, outputfile) -> None:
        remaining = getattr(self, "remaining", None)
        data = source.read() if remaining is None else source.read(remaining)
        type(self).served[0] += len(data)
        outputfile.write(data)


class HttpFolder:
    """`folder` served read-only over HTTP on 127.0.0.1 (`url`), for the life of the block."""

    def __init__(self, folder: Path) -> None:
        handler = type("Files", (_RangeFiles,), {"served": [0]})
        self.handler = handler
        self.server = _QuietServer((HOST, 0), partial(handler, directory=os.fspath(folder)))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server.server_address[1]}"

    @property
    def served_bytes(self) -> int:
        return self.handler.served[0]

    def __enter__(self) -> HttpFolder:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        with contextlib.suppress(Exception):
            self.server.shutdown()
        self.server.server_close()
