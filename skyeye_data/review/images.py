"""The images annotators see: converted for the browser, and put where Label Studio can serve them.

*Display copies.* Browsers decode PNG and JPEG but not TIFF (UCM and Sydney ship TIFF), and a
64-pixel chip or a 4000-pixel DOTA scene is unusable at its own size. Push sends a display copy:
PNG (for PNG sources and images with transparency) or JPEG, the long side scaled into
[``MIN_LONG_SIDE``, ``MAX_LONG_SIDE``]. Label Studio's rectangles are percents of the displayed
image and the task keeps the *original* width, height and image ids, so boxes, corrections and the
fingerprint do not depend on the copy.

*Where the copies go* (``--images``):

- ``upload`` (default): through Label Studio's API, ``POST /api/projects/{id}/import?commit_to_project=false``
  (label_studio/data_import/api.py: ImportAPI.sync_import keeps the FileUpload rows and creates no
  task), served at ``/data/upload/{project}/{file}`` behind the server's own login. Works with a
  server on another machine, local-files serving off. A direct file upload is refused by a project
  whose config has more than one data key (data_import/uploader.py), so the files go to one image
  project per review name, ``NAME · images`` (config: a single ``$image``, no tasks), and the review
  projects' tasks point at them. Uploads are named ``<image id>.<ext>``; the image project's upload
  list (``GET /api/projects/{id}/file-uploads?all=true``) tells which are there, so a second push
  uploads nothing again.
- ``local-files``: written under the server's ``LOCAL_FILES_DOCUMENT_ROOT`` and connected as a local
  storage; only when the toolkit and the server share a filesystem.
"""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

from PIL import Image

from skyeye_data.io import atomic_path

log = logging.getLogger(__name__)

MIN_LONG_SIDE = 512
MAX_LONG_SIDE = 1024
UPSCALED_LONG_SIDE = 768  # small chips are shown at this size
JPEG_QUALITY = 90
UPLOAD_BATCH = 20  # files per upload request
TRANSPORTS = ("upload", "local-files")
_UPLOADED_NAME = re.compile(r"^(?:[0-9a-f]{8}-)?(?P<name>[0-9A-Za-z_.]+\.(?:png|jpg))$")


class ImageError(ValueError):
    """An image of the build output that cannot be shown (not decodable)."""


def display_size(width: int, height: int) -> tuple[int, int]:
    long_side = max(width, height)
    if long_side > MAX_LONG_SIDE:
        scale = MAX_LONG_SIDE / long_side
    elif long_side < MIN_LONG_SIDE:
        scale = UPSCALED_LONG_SIDE / long_side
    else:
        return width, height
    return max(1, round(width * scale)), max(1, round(height * scale))


def _eight_bit(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):  # 16-bit / float rasters: stretch to 0..255
        low, high = image.getextrema()
        span = (high - low) or 1
        return image.point(lambda v: (v - low) * 255 / span).convert("L")
    if image.mode in ("RGB", "L", "RGBA", "LA"):
        return image
    return image.convert("RGBA" if "A" in image.mode or "transparency" in image.info else "RGB")


def display_copy(data: bytes, source_format: str | None) -> tuple[bytes, str]:
    """(bytes, extension) of a browser-displayable copy at a screen size."""
    try:
        with Image.open(io.BytesIO(data)) as opened:
            opened.load()
            image = _eight_bit(opened)
    except Exception as error:  # noqa: BLE001 (PIL raises many kinds for a bad file)
        raise ImageError(f"cannot decode the image ({type(error).__name__}: {error})") from error
    size = display_size(*image.size)
    if size != image.size:
        image = image.resize(size, Image.Resampling.LANCZOS)
    as_png = (source_format or "").lower() == "png" or image.mode in ("RGBA", "LA")
    buffer = io.BytesIO()
    if as_png:
        image.save(buffer, format="PNG", optimize=False)
        return buffer.getvalue(), "png"
    image.convert("RGB").save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue(), "jpg"


def display_name(image_id: str, extension: str) -> str:
    return f"{image_id}.{extension}"


# -- upload through the API ---------------------------------------------------------------------------


def _http(client):
    """The SDK client's own HTTP session, base URL and auth headers (the token stays inside them)."""
    wrapper = client._client_wrapper
    return wrapper.httpx_client.httpx_client, wrapper.get_base_url().rstrip("/"), wrapper.get_headers()


def uploaded_images(client, project_id: int) -> dict[str, str]:
    """file name (``<image id>.<ext>``) → served URL, for the project's uploads."""
    http, base, headers = _http(client)
    response = http.get(f"{base}/api/projects/{project_id}/file-uploads", params={"all": "true"}, headers=headers)
    response.raise_for_status()
    return _urls(response.json())


def _urls(uploads: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    found = {}
    for upload in uploads:
        path = str(upload.get("file") or "")
        match = _UPLOADED_NAME.match(path.rsplit("/", 1)[-1])
        if match:
            found[match.group("name")] = "/data/" + path.lstrip("/")
    return found


def upload_images(client, project_id: int, files: Mapping[str, bytes]) -> dict[str, str]:
    """Upload ``files`` (name → bytes) without creating tasks; name → served URL."""
    http, base, headers = _http(client)
    urls: dict[str, str] = {}
    names = sorted(files)
    for start in range(0, len(names), UPLOAD_BATCH):
        batch = names[start : start + UPLOAD_BATCH]
        # distinct field names: Label Studio reads request.FILES.items(), one file per field name
        parts = [(f"file{i}", (name, files[name], _mime(name))) for i, name in enumerate(batch)]
        response = http.post(
            f"{base}/api/projects/{project_id}/import", params={"commit_to_project": "false"}, files=parts,
            headers=headers, timeout=300,
        )  # fmt: skip
        response.raise_for_status()
        ids = response.json().get("file_upload_ids") or []
        listed = http.get(
            f"{base}/api/projects/{project_id}/file-uploads", params={"ids": json.dumps(ids)}, headers=headers
        )  # fmt: skip
        listed.raise_for_status()
        urls.update(_urls(listed.json()))
    missing = sorted(set(files) - set(urls))
    if missing:
        raise ImageError(f"the server did not keep the uploads {missing[:3]}{' ...' if len(missing) > 3 else ''}")
    return urls


def _mime(name: str) -> str:
    return "image/png" if name.endswith(".png") else "image/jpeg"


IMAGE_PROJECT_CONFIG = '<View><Image name="image" value="$image"/></View>'


class UploadStore:
    """Display copies uploaded to the review's image project (each name once)."""

    def __init__(self, client, project_id: int):
        self.client, self.project_id = client, project_id
        self.urls = uploaded_images(client, project_id)

    def urls_for(self, copies: Mapping[str, bytes]) -> dict[str, str]:
        missing = {name: data for name, data in copies.items() if name not in self.urls}
        if missing:
            self.urls.update(upload_images(self.client, self.project_id, missing))
        return {name: self.urls[name] for name in copies}


# -- local files ----------------------------------------------------------------------------------------


class LocalFilesStore:
    """Display copies under the server's local-files document root (a shared filesystem)."""

    def __init__(self, root: Path, folder: Path):
        self.root, self.folder = Path(root), Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def urls_for(self, copies: Mapping[str, bytes]) -> dict[str, str]:
        urls = {}
        for name, data in copies.items():
            path = self.folder / name
            if not path.exists():  # named by the image's content hash: an existing file holds these bytes
                with atomic_path(path) as tmp:
                    tmp.write_bytes(data)
            urls[name] = f"/data/local-files/?d={path.relative_to(self.root).as_posix()}"
        return urls
