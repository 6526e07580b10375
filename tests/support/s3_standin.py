"""A local S3 endpoint for the tests: moto's server (``python -m moto.server``) on loopback.

A STAND-IN for S3, not S3: moto speaks the S3 REST protocol (ListObjectsV2, PutObject, multipart uploads,
SigV4 signatures) well enough for pyarrow's S3 filesystem, but its consistency, throttling and timings are not
AWS's. It runs with moto's authentication on (``INITIAL_NO_AUTH_ACTION_COUNT``): the first requests create an
IAM user with an access key allowed ``s3:*`` and the test bucket, and from then on a wrong key or secret is
refused as S3 refuses it (InvalidAccessKeyId, SignatureDoesNotMatch).

:class:`FaultProxy` sits between a client and the stand-in and, for requests whose request line matches a
pattern, drops the connection or answers ``503 SlowDown`` (S3's throttling reply): the faults a write meets on
the way to a real object store.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

BUCKET = "hilbench-results"
REGION = "us-east-1"
_SETUP_REQUESTS = 4  # create_user, put_user_policy, create_access_key, create_bucket


class S3StandIn:
    """``moto.server`` on 127.0.0.1 (a free port), with one bucket and one user's access key."""

    def __init__(self, workdir: Path) -> None:
        import boto3  # moto's own dependency

        self.log = workdir / "moto_server.log"
        env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT=str(_SETUP_REQUESTS), PYTHONUNBUFFERED="1")
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0"],
                                         stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 60
        port = None
        while port is None:
            m = re.search(r"Running on http://127\.0\.0\.1:(\d+)", self.log.read_text(errors="replace"))
            if m:
                port = int(m.group(1))
            elif self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"moto_server did not start: {self.log.read_text(errors='replace')[-2000:]}")
            else:
                time.sleep(0.05)
        self.port = port
        self.endpoint = f"http://127.0.0.1:{port}"
        boot = {"endpoint_url": self.endpoint, "region_name": REGION, "aws_access_key_id": "bootstrap",
                "aws_secret_access_key": "bootstrap"}
        iam = boto3.client("iam", **boot)
        iam.create_user(UserName="hilbench")
        iam.put_user_policy(UserName="hilbench", PolicyName="s3", PolicyDocument=(
            '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}'))
        key = iam.create_access_key(UserName="hilbench")["AccessKey"]
        self.access_key, self.secret_key = key["AccessKeyId"], key["SecretAccessKey"]
        boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION, aws_access_key_id=self.access_key,
                     aws_secret_access_key=self.secret_key).create_bucket(Bucket=BUCKET)

    def env(self, endpoint: str | None = None) -> dict[str, str]:
        """The AWS environment variables a client of this endpoint uses (and nothing from the user's own)."""
        return {"AWS_ENDPOINT_URL": endpoint or self.endpoint, "AWS_ACCESS_KEY_ID": self.access_key,
                "AWS_SECRET_ACCESS_KEY": self.secret_key, "AWS_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true",
                "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}

    def s3(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION, aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key)

    def keys(self, prefix: str) -> list[str]:
        """Every object key under ``prefix`` (the test's view, through boto3)."""
        pages = self.s3().get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class FaultProxy:
    """A TCP proxy on 127.0.0.1 in front of ``upstream`` (host, port). Each request travels on a connection of
    its own (``Connection: close`` is set); one whose request line matches :attr:`rule` (a regex; None: none)
    gets :attr:`mode`: ``drop`` (the connection is closed unanswered) or ``throttle`` (``503 SlowDown``)."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.rule: str | None = None
        self.mode = "drop"
        self.hits = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._stop = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        try:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                head += chunk
            head, _, rest = head.partition(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            request_line = lines[0].decode("latin-1")
            if self.rule is not None and re.search(self.rule, request_line):
                self.hits += 1
                if self.mode == "throttle":
                    body = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
                            b"<Message>Please reduce your request rate.</Message></Error>")
                    conn.sendall(b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: "
                                 + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
                return  # drop: closed unanswered
            kept = [ln for ln in lines[1:] if not ln.lower().startswith(b"connection:")]
            up = socket.create_connection(self.upstream)
            up.sendall(b"\r\n".join([lines[0], *kept, b"Connection: close"]) + b"\r\n\r\n" + rest)
            t = threading.Thread(target=_pipe, args=(conn, up), daemon=True)
            t.start()
            _pipe(up, conn)
            t.join(timeout=30)
            up.close()
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self._stop = True
        self.sock.close()


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass
