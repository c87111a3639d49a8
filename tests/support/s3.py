"""A real S3-compatible server on loopback for the storage tests: moto in server mode.

The server runs as a subprocess (``python -m moto.server``) bound to 127.0.0.1, one per
test session; each test gets a bucket of its own. The test process and any chatferry
process it starts reach it through the usual ``AWS_*`` environment variables, exactly as
a deployment would reach S3 or MinIO.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

import httpx
import pytest

from support.servers import free_port
from support.waiting import wait_for

_S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


@dataclass
class MotoServer:
    """moto's S3 server; ``stop``/``start`` simulate an outage on the same port (moto
    keeps its data in memory, so a restart starts empty)."""

    log_path: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self.log_path.open("ab"),
            stderr=subprocess.STDOUT,
        )

        def ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"moto exited: {self.log_path.read_text()}")
            try:
                return httpx.get(f"{self.endpoint}/moto-api/", timeout=1).status_code < 500
            except httpx.HTTPError:
                return False

        wait_for(ready, timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    # moto accepts unsigned requests, which keeps these test helpers free of boto3.
    def create_bucket(self, bucket: str) -> None:
        response = httpx.put(f"{self.endpoint}/{bucket}")
        assert response.status_code == 200, response.text

    def delete_bucket(self, bucket: str) -> None:
        """Deletes every object of the bucket, then the bucket."""
        for key in self.list_keys(bucket):
            assert httpx.delete(f"{self.endpoint}/{bucket}/{key}").status_code == 204
        response = httpx.delete(f"{self.endpoint}/{bucket}")
        assert response.status_code == 204, response.text

    def list_keys(self, bucket: str) -> dict[str, str]:
        """Every object's key and ETag (a multipart upload's ETag ends in ``-<parts>``)."""
        response = httpx.get(f"{self.endpoint}/{bucket}", params={"list-type": "2"})
        assert response.status_code == 200, response.text
        root = ElementTree.fromstring(response.content)
        return {
            item.findtext(f"{_S3_NS}Key", ""): item.findtext(f"{_S3_NS}ETag", "").strip('"')
            for item in root.iter(f"{_S3_NS}Contents")
        }

    def get_object(self, bucket: str, key: str) -> httpx.Response:
        return httpx.get(f"{self.endpoint}/{bucket}/{key}")


@dataclass(frozen=True)
class S3Bucket:
    server: MotoServer
    name: str
    prefix: str

    @property
    def storage_url(self) -> str:
        return f"s3://{self.name}/{self.prefix}"

    def object_keys(self) -> dict[str, str]:
        return self.server.list_keys(self.name)

    def read(self, key: str) -> bytes:
        response = self.server.get_object(self.name, key)
        assert response.status_code == 200, response.text
        return response.content


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """moto's S3 server for the whole session (a test that stops it gets it restarted)."""
    server = MotoServer(tmp_path_factory.mktemp("moto") / "moto.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def s3_bucket(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> S3Bucket:
    """A new bucket, with the AWS_* variables pointing at moto (for this process and the
    processes it starts)."""
    if not moto_server.running:  # a test stopped it to simulate an outage
        moto_server.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "chatferry-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "chatferry-test-secret")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    bucket = S3Bucket(moto_server, f"chatferry-{uuid.uuid4().hex[:8]}", "backups/prod")
    moto_server.create_bucket(bucket.name)
    return bucket
