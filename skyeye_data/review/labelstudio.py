"""The Label Studio bridge: push queued samples as tasks, pull annotations back as verdicts.

Server and token come from ``LABEL_STUDIO_URL`` and ``LABEL_STUDIO_API_KEY`` only; the token goes
into the SDK client's Authorization header and nowhere else (never into a URL, a file or a log).

One review name maps to up to three projects, one per labeling config in ``review/``:
``NAME · caption_vqa``, ``NAME · grounding``, ``NAME · conversa`` (a project has one config).

Images: push sends a browser-displayable copy of each queued image (:mod:`.images`), uploaded
through the API by default (the server may run elsewhere, local-files serving off), or written into
the server's local-files document root (``--images local-files``, a shared filesystem only).

Projects carry ``review/GUIDELINES.md`` as their instructions (shown before labeling), and
``maximum_annotations`` (Label Studio's overlap) when more than one annotator should see a task.

Push is idempotent: each task's data carries the sample id and content fingerprint, and a sample
whose (id, fingerprint) already has a task in the project is not imported again. Pull reads the
project's tasks page by page (:mod:`.pull`).
"""

from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from skyeye_data.review.images import (
    IMAGE_PROJECT_CONFIG,
    ImageError,
    LocalFilesStore,
    UploadStore,
    display_copy,
    display_name,
)
from skyeye_data.review.queue import QueuedSample, read_images
from skyeye_data.review.tasks import KINDS, MODEL_VERSION, review_kind, task_key, task_payload

log = logging.getLogger(__name__)

URL_ENV = "LABEL_STUDIO_URL"
API_KEY_ENV = "LABEL_STUDIO_API_KEY"
DOCUMENT_ROOT_ENV = "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT"
IMAGE_FOLDER = "skyeye-review"
CONFIG_DIR = Path(__file__).resolve().parents[2] / "review"
GUIDELINES = CONFIG_DIR / "GUIDELINES.md"


class ReviewBridgeError(RuntimeError):
    """A problem the user can fix: missing settings, an unreachable server, a bad export file."""


Advance = Callable[[int], None]


def _no_progress(n: int) -> None:  # noqa: ARG001
    pass


# -- connection ---------------------------------------------------------------------------------------


def connect(timeout_s: float = 60.0):
    """An SDK client from LABEL_STUDIO_URL / LABEL_STUDIO_API_KEY (the only place the token is read)."""
    from label_studio_sdk import LabelStudio

    url, key = os.environ.get(URL_ENV, "").strip(), os.environ.get(API_KEY_ENV, "").strip()
    missing = [name for name, value in ((URL_ENV, url), (API_KEY_ENV, key)) if not value]
    if missing:
        raise ReviewBridgeError(f"set {' and '.join(missing)} in the environment (the token is read from nowhere else)")
    if not re.match(r"^https?://", url):
        raise ReviewBridgeError(f"{URL_ENV} must start with http:// or https://")
    return LabelStudio(base_url=url.rstrip("/"), api_key=key, timeout=timeout_s)


def has_settings() -> bool:
    return bool(os.environ.get(URL_ENV, "").strip() and os.environ.get(API_KEY_ENV, "").strip())


def document_root(explicit: Path | None = None) -> Path:
    root = explicit or (Path(os.environ[DOCUMENT_ROOT_ENV]) if os.environ.get(DOCUMENT_ROOT_ENV) else None)
    if root is None:
        raise ReviewBridgeError(
            f"push writes the images under Label Studio's local-files document root: pass --document-root "
            f"or set {DOCUMENT_ROOT_ENV} (the same value the server runs with)"
        )
    if not Path(root).is_dir():
        raise ReviewBridgeError(f"local-files document root {root} is not a folder")
    return Path(root).resolve()


def guidelines_html() -> str:
    """review/GUIDELINES.md as the HTML Label Studio shows as the project's instructions."""
    from markdown_it import MarkdownIt

    if not GUIDELINES.exists():
        raise ReviewBridgeError(f"{GUIDELINES} is missing (it ships in the project's review/ folder)")
    return MarkdownIt("commonmark", {"html": False}).enable("table").render(GUIDELINES.read_text(encoding="utf-8"))


# -- projects -----------------------------------------------------------------------------------------


def project_title(name: str, kind: str) -> str:
    return f"{name} · {kind}"


def label_config(kind: str) -> str:
    path = CONFIG_DIR / f"{kind}.xml"
    if not path.exists():
        raise ReviewBridgeError(f"labeling config {path} is missing (it ships in the project's review/ folder)")
    return path.read_text(encoding="utf-8")


def find_project(client, title: str) -> int | None:
    for project in client.projects.list(title=title, page_size=100):
        if project.title == title:
            return int(project.id)
    return None


def project_settings(kind: str, overlap: int) -> dict[str, Any]:
    return {
        "label_config": label_config(kind),
        "expert_instruction": guidelines_html(),
        "show_instruction": True,
        "show_skip_button": True,
        "maximum_annotations": overlap,  # Label Studio's overlap: annotators per task
        "show_collab_predictions": True,  # the sample's answer and boxes appear pre-filled ...
        "model_version": MODEL_VERSION,  # ... from the predictions push writes
    }


def ensure_project(client, title: str, kind: str, overlap: int = 1) -> int:
    """The project (created, or brought up to date: config, instructions, overlap)."""
    settings = project_settings(kind, overlap)
    existing = find_project(client, title)
    if existing is not None:
        client.projects.update(id=existing, **settings)
        return existing
    project = client.projects.create(
        title=title, description="SkyEye samples waiting for human review (pushed by `skyeye review push`).", **settings
    )
    return int(project.id)


def ensure_image_project(client, name: str) -> int:
    """The project that holds a review's uploaded images (see :mod:`.images`); it has no tasks."""
    title = project_title(name, "images")
    existing = find_project(client, title)
    if existing is not None:
        return existing
    project = client.projects.create(
        title=title, label_config=IMAGE_PROJECT_CONFIG,
        description=f"Images of the SkyEye review {name!r} (uploaded by `skyeye review push`); no tasks: label in the other projects.",
    )  # fmt: skip
    return int(project.id)


def ensure_local_storage(client, project_id: int, folder: Path) -> None:
    """Connect the image folder to the project; Label Studio serves local files only under a storage."""
    for storage in client.import_storage.local.list(project=project_id):
        if Path(storage.path or "") == folder:
            return
    client.import_storage.local.create(
        project=project_id, path=str(folder), title="SkyEye review images", use_blob_urls=False, regex_filter="^$"
    )


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "review"


# -- tasks --------------------------------------------------------------------------------------------


def task_pages(client, project_id: int, page_size: int, fields: str = "all") -> Iterator[list]:
    """The project's tasks, one page (a list) at a time, in task-id order."""
    from label_studio_sdk.core.api_error import ApiError

    page = 1
    while True:
        try:
            items = client.tasks.list(project=project_id, page=page, page_size=page_size, fields=fields).items or []
        except ApiError as error:
            if error.status_code == 404:  # Label Studio answers 404 past the last page
                return
            raise
        if not items:
            return
        yield items
        if len(items) < page_size:
            return
        page += 1


def existing_task_keys(client, project_id: int, page_size: int = 500) -> set[tuple[str, str]]:
    keys = set()
    for page in task_pages(client, project_id, page_size, fields="task_only"):
        for task in page:
            key = task_key(task.data or {})
            if key:
                keys.add(key)
    return keys


# -- push ---------------------------------------------------------------------------------------------


@dataclass
class PushSummary:
    imported: dict[str, int] = field(default_factory=dict)  # kind → new tasks
    already_there: dict[str, int] = field(default_factory=dict)  # kind → samples with a task already
    missing_images: list[str] = field(default_factory=list)  # sample ids whose image is not in the build
    bad_images: list[str] = field(default_factory=list)  # sample ids whose image cannot be decoded
    projects: dict[str, int] = field(default_factory=dict)  # title → id


def labeling_url(project_id: int) -> str:
    """The labeling stream: Submit moves to the next task (opening a task from the list does not)."""
    return f"/projects/{project_id}/data?labeling=1"


def push(
    client,
    out: Path,
    name: str,
    queued: Sequence[QueuedSample],
    *,
    images: str = "upload",
    root: Path | None = None,
    batch_size: int = 100,
    retries: int = 3,
    overlap: int = 1,
    advance: Advance = _no_progress,
) -> PushSummary:
    """Import the queued samples as tasks of the review projects (only the ones not there yet).

    Batches are imported one by one; a crash leaves whole batches on the server, and the next push
    imports only the samples that have no task yet (resumable).
    """
    summary = PushSummary()
    store = None
    shown: dict[str, str | None] = {}  # image id → its display copy's URL (None: undecodable), across batches
    by_kind: dict[str, list[QueuedSample]] = {}
    for item in queued:
        by_kind.setdefault(review_kind(item.sample), []).append(item)
    for kind in KINDS:
        items = by_kind.get(kind, [])
        if not items:
            continue
        title = project_title(name, kind)
        project_id = ensure_project(client, title, kind, overlap)
        summary.projects[title] = project_id
        store = store or _image_store(client, images, root, name)
        if isinstance(store, LocalFilesStore):
            ensure_local_storage(client, project_id, store.folder)
        existing = existing_task_keys(client, project_id)
        new = [q for q in items if (q.sample["id"], q.fingerprint) not in existing]
        summary.already_there[kind] = len(items) - len(new)
        advance(len(items) - len(new))
        imported = 0
        for start in range(0, len(new), batch_size):
            batch = new[start : start + batch_size]
            payloads = _payloads_with_images(out, batch, store, summary, shown)
            imported += import_batch(client, project_id, payloads, retries)
            advance(len(batch))
        summary.imported[kind] = imported
    return summary


def _image_store(client, images: str, root: Path | None, name: str):
    if images == "upload":
        return UploadStore(client, ensure_image_project(client, name))
    if images == "local-files":
        return LocalFilesStore(document_root(root), document_root(root) / IMAGE_FOLDER / slug(name))
    raise ReviewBridgeError(f"unknown image transport {images!r} (upload or local-files)")


def _payloads_with_images(out: Path, items: list[QueuedSample], store, summary: PushSummary, shown: dict) -> list[dict]:
    images = read_images(out, (q.sample["image_ids"][0] for q in items if q.sample["image_ids"]))
    copies: dict[str, bytes] = {}
    names: dict[str, str] = {}
    for image_id, image in images.items():
        if image_id in shown:
            continue
        try:
            data, extension = display_copy(image["bytes"], image.get("format"))
        except ImageError as error:
            log.warning("image %s: %s", image_id, error)
            shown[image_id] = None
            continue
        names[image_id] = display_name(image_id, extension)
        copies[names[image_id]] = data
    urls = store.urls_for(copies)
    shown.update({image_id: urls[name] for image_id, name in names.items()})
    payloads = []
    for item in items:
        image_id = item.sample["image_ids"][0] if item.sample["image_ids"] else None
        if image_id not in images:
            summary.missing_images.append(item.sample["id"])
        elif shown.get(image_id) is None:
            summary.bad_images.append(item.sample["id"])
        else:
            payloads.append(task_payload(item, images[image_id], shown[image_id]))
    return payloads


def import_batch(client, project_id: int, batch: list[dict], retries: int) -> int:
    """Import one batch, retrying transient failures without ever importing a sample twice.

    Returns the batch size: tasks found on the server after a failed attempt were imported by that
    attempt (push imports only samples that had no task before the batch).
    """
    pending = batch
    for attempt in range(retries + 1):
        try:
            if pending:
                # plain dicts: the SDK's ImportApiRequest model wants a task id in each prediction,
                # which the server assigns only on import
                client.projects.import_tasks(id=project_id, request=pending)
            return len(batch)
        except Exception as error:  # noqa: BLE001 (retry any transport or server error, re-raise at the end)
            if attempt == retries or not _transient(error):
                raise
            log.warning("import of %d tasks failed (%s); retrying", len(pending), type(error).__name__)
            time.sleep(min(2**attempt, 10))
            # the failed request may have reached the server: import only what is still missing
            existing = existing_task_keys(client, project_id)
            pending = [p for p in pending if task_key(p["data"]) not in existing]
    return len(batch)


def _transient(error: Exception) -> bool:
    import httpx
    from label_studio_sdk.core.api_error import ApiError

    if isinstance(error, ApiError):
        return error.status_code is None or error.status_code >= 500 or error.status_code == 429
    return isinstance(error, (httpx.TransportError, OSError))
