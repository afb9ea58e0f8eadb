"""An S3-protocol server on 127.0.0.1 for the tests: moto's server mode, used through real s3fs.

No conftest magic: test modules import what they need (`from s3 import s3, moto_s3`; pytest puts
this folder on sys.path, as test_fetch.py does for faultserver). `moto_s3()` starts
`ThreadedMotoServer` on an ephemeral loopback port, creates a bucket and yields an `S3Endpoint`;
the `s3` fixture does that and also sets the standard AWS environment (region and fake
credentials) with monkeypatch, so s3fs finds credentials the way it would in production. The
endpoint goes through fsspec storage options (`client_kwargs.endpoint_url`), or through
`AWS_ENDPOINT_URL` in `S3Endpoint.env()` for subprocesses (the CLI, Ray workers).

`python tests/integration/s3.py` runs a server alone and prints its endpoint (for manual tries).
"""
from __future__ import annotations

import contextlib
import secrets
import sys
import time
from dataclasses import dataclass
from typing import Any, Iterator

import pytest

REGION = "us-east-1"
ACCESS_KEY = "AKIAFAKESYNSHARD0001"


@dataclass(frozen=True)
class S3Endpoint:
    """A running S3 server with one bucket, and the settings to reach it."""

    url: str  # http://127.0.0.1:PORT
    bucket: str
    secret: str  # the fake secret key: tests grep outputs for it

    def storage_options(self, endpoint: str | None = None, retries: int = 0) -> dict[str, Any]:
        """fsspec options for s3fs; `retries` > 0 sets botocore's retry budget ("standard" mode).

        s3fs's own retry loop (`S3FileSystem.retries`, 5) is a class attribute, not an option.
        """
        opts: dict[str, Any] = {"client_kwargs": {"endpoint_url": endpoint or self.url}}
        if retries:
            opts["config_kwargs"] = {"retries": {"max_attempts": retries, "mode": "standard"},
                                     "connect_timeout": 5, "read_timeout": 10}
        return opts

    def env(self, endpoint: str | None = None) -> dict[str, str]:
        """The standard AWS environment for a subprocess (credentials, region, endpoint)."""
        return {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": self.secret,
                "AWS_DEFAULT_REGION": REGION, "AWS_ENDPOINT_URL": endpoint or self.url,
                "AWS_EC2_METADATA_DISABLED": "true"}

    def uri(self, path: str = "") -> str:
        return f"s3://{self.bucket}/{path}".rstrip("/")

    def fs(self, **extra: Any) -> Any:
        """A fresh (uncached) s3fs filesystem on this server."""
        import s3fs

        return s3fs.S3FileSystem(skip_instance_cache=True, **self.storage_options(), **extra)


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """A ThreadedMotoServer on 127.0.0.1, ephemeral port; yields its URL, stops it after."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def make_bucket(url: str, bucket: str, secret: str) -> None:
    import boto3

    client = boto3.client("s3", endpoint_url=url, region_name=REGION,
                          aws_access_key_id=ACCESS_KEY, aws_secret_access_key=secret)
    client.create_bucket(Bucket=bucket)


@contextlib.contextmanager
def moto_s3(bucket: str = "synshard-test") -> Iterator[S3Endpoint]:
    """A server plus a fresh bucket; the secret is random so a leak cannot match by chance."""
    secret = "fakeSecret" + secrets.token_hex(12)
    with moto_server() as url:
        make_bucket(url, bucket, secret)
        yield S3Endpoint(url, bucket, secret)


def set_aws_env(monkeypatch: pytest.MonkeyPatch, endpoint: S3Endpoint) -> None:
    """Credentials and region from the environment, as production reads them (not the endpoint)."""
    env = endpoint.env()
    env.pop("AWS_ENDPOINT_URL")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Endpoint]:
    """A moto S3 server on loopback with a bucket, AWS env set; stopped after the test."""
    with moto_s3() as endpoint:
        set_aws_env(monkeypatch, endpoint)
        yield endpoint


def upload_folder(fs: Any, local: str, remote: str) -> None:
    """Copy a local folder tree to `remote` (an s3fs path)."""
    fs.put(local.rstrip("/") + "/", remote.rstrip("/") + "/", recursive=True)


if __name__ == "__main__":
    with moto_s3() as ep:
        print(ep.url, ep.bucket, flush=True)
        while True:
            time.sleep(3600)
    sys.exit(0)
