"""A real Label Studio server for the review tests, on 127.0.0.1 only.

The server comes from ``.venv-labelstudio`` (``bash scripts/labelstudio.sh install``): Label Studio
pins its own SDK version, so it cannot share ``.venv``. One server serves the whole test session:
a temporary data directory, SQLite, a preset user (e-mail, random password, random legacy API
token), local-files serving OFF (the server cannot read the toolkit's files: push uploads the
images through the API), version check and analytics off.

Without ``.venv-labelstudio`` the tests fail when ``CI`` is set (CI must cover the bridge) and skip
with the reason elsewhere.
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
LABEL_STUDIO_VENV = Path(os.environ.get("LABEL_STUDIO_VENV", PROJECT_ROOT / ".venv-labelstudio"))
LABEL_STUDIO_BIN = LABEL_STUDIO_VENV / "bin" / "label-studio"
START_TIMEOUT_S = 240


@dataclass
class LabelStudioServer:
    url: str
    token: str
    document_root: Path
    data_dir: Path
    process: subprocess.Popen
    email: str = "reviewer@skyeye.test"
    password: str = ""
    started_in_s: float = 0.0

    def env(self) -> dict[str, str]:
        """The environment a toolkit command needs to reach this server."""
        return {
            "LABEL_STUDIO_URL": self.url,
            "LABEL_STUDIO_API_KEY": self.token,
        }

    def stop(self) -> None:
        if isinstance(self.process, _Detached):
            return
        if self.process.poll() is None:
            # label-studio runs in its own process group (start_new_session): end it and its workers
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        shutil.rmtree(self.data_dir.parent, ignore_errors=True)


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


EMAIL = "reviewer@skyeye.test"


def server_environment(data_dir: Path, document_root: Path, token: str, password: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LABEL_STUDIO_", "DJANGO_"))}
    env.update(
        {
            "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
            "DJANGO_DB": "sqlite",
            "LABEL_STUDIO_USERNAME": EMAIL,
            "LABEL_STUDIO_PASSWORD": password,
            "LABEL_STUDIO_USER_TOKEN": token,
            "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
            # the server has no access to the toolkit's files: push uploads the images (as a remote
            # server's users would); local-files serving stays off
            "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "false",
            "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(document_root),
            # no calls home: version check, analytics and error reporting off
            "LATEST_VERSION_CHECK": "false",
            "COLLECT_ANALYTICS": "false",
            "SENTRY_DSN": "",
            "FRONTEND_SENTRY_DSN": "",
            "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
        }
    )
    return env


def wait_for_health(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"label-studio exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise RuntimeError(f"label-studio did not answer /health in {START_TIMEOUT_S}s:\n{log.read_text()[-3000:]}")


def start_server() -> LabelStudioServer:
    base = Path(tempfile.mkdtemp(prefix="skyeye-labelstudio-"))
    data_dir, document_root = base / "data", base / "files"
    data_dir.mkdir()
    document_root.mkdir()
    token, password = secrets.token_hex(20), secrets.token_urlsafe(16)
    started = time.monotonic()
    port = free_loopback_port()
    log = base / "server.log"
    command = [
        str(LABEL_STUDIO_BIN), "start", "--internal-host", "127.0.0.1", "--port", str(port),
        "--no-browser", "--data-dir", str(data_dir),
    ]  # fmt: skip
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            command,
            env=server_environment(data_dir, document_root, token, password),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=base,
            start_new_session=True,
        )
    server = LabelStudioServer(f"http://127.0.0.1:{port}", token, document_root, data_dir, process, EMAIL, password)
    try:
        wait_for_health(server.url, process, log)
    except Exception:
        server.stop()
        raise
    server.started_in_s = time.monotonic() - started
    return server


_SESSION_SERVER: LabelStudioServer | None = None


def attach_dev_server(description: Path) -> LabelStudioServer:
    """While developing: reuse a running test server described by a JSON file (url, token, root)."""
    import json

    info = json.loads(description.read_text())
    root = Path(info["root"])
    return LabelStudioServer(info["url"], info["token"], root, root.parent / "data", _Detached(), EMAIL, info.get("password", ""))


class _Detached:
    """A process handle for a server this session did not start (and must not stop)."""

    pid = -1

    def poll(self) -> int:
        return 0


def session_server() -> LabelStudioServer:
    """The session's one server, started on first use and stopped when the interpreter exits."""
    global _SESSION_SERVER
    if not LABEL_STUDIO_BIN.exists():
        reason = f"Label Studio is not installed at {LABEL_STUDIO_VENV} (run: bash scripts/labelstudio.sh install)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    if _SESSION_SERVER is None and os.environ.get("SKYEYE_REVIEW_DEV_SERVER"):
        _SESSION_SERVER = attach_dev_server(Path(os.environ["SKYEYE_REVIEW_DEV_SERVER"]))
    if _SESSION_SERVER is None:
        _SESSION_SERVER = start_server()
        atexit.register(_SESSION_SERVER.stop)
        print(f"\n[review_server] Label Studio started in {_SESSION_SERVER.started_in_s:.0f}s", file=sys.stderr)
    return _SESSION_SERVER


@pytest.fixture(scope="session")
def labelstudio_server() -> LabelStudioServer:
    return session_server()


# -- hand-made build outputs (docs/ARCHITECTURE.md columns) -----------------------------------------


def png_bytes(width: int, height: int, shade: int) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (shade, 128, 255 - shade)).save(buffer, format="PNG")
    return buffer.getvalue()


def image_row(width: int, height: int, shade: int) -> dict:
    import hashlib

    data = png_bytes(width, height, shade)
    return {"image_id": hashlib.sha256(data).hexdigest(), "bytes": data, "format": "png", "width": width, "height": height}


def sample_row(sample_id: str, source: str, task: str, image_id: str, turns: list[tuple[str, str]]) -> dict:
    conversation = []
    for user, assistant in turns:
        conversation += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return {
        "id": sample_id,
        "source": source,
        "task": task,
        "split": "train",
        "image_ids": [image_id],
        "conversation": conversation,
        "review_status": "not_required",
        "provenance": "{}",
    }


def write_build_output(out: Path, samples: list[dict], images: list[dict]) -> Path:
    """A minimal build output: samples/train-00000-of-00001.parquet and images/images-00000.parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from skyeye_data.tables import SAMPLES_SCHEMA

    (out / "samples").mkdir(parents=True, exist_ok=True)
    (out / "images").mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(samples, schema=SAMPLES_SCHEMA), out / "samples" / "train-00000-of-00001.parquet")
    image_schema = pa.schema(
        [("image_id", pa.string()), ("bytes", pa.binary()), ("format", pa.string()), ("width", pa.int64()), ("height", pa.int64())]
    )
    pq.write_table(pa.Table.from_pylist(images, schema=image_schema), out / "images" / "images-00000.parquet")
    return out
