"""Shared, generic test fixtures (keep small: one helper per need)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, settings

# Property tests must not depend on how busy the machine is: no per-example deadline, and no
# "input generation is slow" health check (a loaded CI runner trips it with nothing wrong).
settings.register_profile("east", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("east")


@pytest.fixture
def sine() -> Callable[..., np.ndarray]:
    """``sine(freq, seconds, sample_rate, amplitude=0.5, channels=1)`` -> float32 waveform.

    Mono gives ``(samples,)``, more channels ``(samples, channels)`` (the same tone in each).
    """

    def make(
        freq: float, seconds: float, sample_rate: int, amplitude: float = 0.5, channels: int = 1
    ) -> np.ndarray:
        t = np.arange(int(round(seconds * sample_rate))) / sample_rate
        tone = (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)
        return tone if channels == 1 else np.repeat(tone[:, None], channels, axis=1)

    return make


@pytest.fixture
def params_file(tmp_path: Path) -> Callable[..., Path]:
    """``params_file(section={...}, ...)`` writes a params.yaml in tmp_path and returns its path.

    Only the given sections are written; everything else takes the dataclass defaults.
    """

    def write(**sections: Any) -> Path:
        path = tmp_path / "params.yaml"
        path.write_text(yaml.safe_dump(sections, sort_keys=False))
        return path

    return write


# ---- a real S3-protocol server on loopback (moto) -----------------------------------------
class S3Server:
    """A running ``moto`` S3 server: ``endpoint`` (``http://127.0.0.1:PORT``) and ``env`` for clients.

    Credentials are dummy values in the standard AWS variables; nothing is read from files.
    """

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.env = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_CONFIG_FILE": "/nonexistent/aws-config",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
        }
        self._buckets = 0

    def new_bucket(self) -> str:
        """Create an empty bucket and return its name (one per test keeps tests independent)."""
        import s3fs

        self._buckets += 1
        name = f"east-test-{self._buckets}"
        s3fs.S3FileSystem(skip_instance_cache=True).mkdir(name)
        return name


@pytest.fixture(scope="session")
def s3_server() -> Any:
    """Start ``python -m moto.server`` on a free loopback port for the session; stop it afterwards."""
    import os
    import socket
    import subprocess
    import sys
    import threading

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    endpoint = f"http://127.0.0.1:{port}"
    # Handshake, no timing: the server says " * Running on <endpoint>" on stderr once it listens. The
    # thread keeps draining stderr (one line per request) so the server never blocks on a full pipe.
    ready = threading.Event()
    said: list[str] = []

    def watch() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            if len(said) < 50:
                said.append(line)
            if f"Running on {endpoint}" in line:
                ready.set()
        ready.set()  # end of stderr: the server exited

    threading.Thread(target=watch, daemon=True).start()
    ready.wait()
    if proc.poll() is not None:
        pytest.fail("the moto S3 server did not start (pip install 'moto[server]' s3fs; make install): "
                    + "".join(said)[-500:])
    server = S3Server(endpoint)
    saved = {key: os.environ.get(key) for key in server.env}
    os.environ.update(server.env)  # subprocesses (pipeline, dvc) inherit them
    try:
        yield server
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
