"""The Label Studio bridge: push queued samples as tasks, pull annotations back as verdicts.

Server and token come from ``LABEL_STUDIO_URL`` and ``LABEL_STUDIO_API_KEY`` only; the token goes
into the SDK client's Authorization header and nowhere else (never into a URL, a file or a log).

One review name maps to up to three projects, one per labeling config in ``review/``:
``NAME · caption_vqa``, ``NAME · grounding``, ``NAME · conversa`` (a project has one config).

Images are served by Label Studio's local-files storage: push copies the queued images out of the
build's images table into ``<document root>/skyeye-review/<name>/`` and connects that folder to the
project, so task URLs are plain ``/data/local-files/?d=...`` paths behind Label Studio's own login.

Push is idempotent: each task's data carries the sample id and content fingerprint, and a sample
whose (id, fingerprint) already has a task in the project is not imported again. Pull reads the
project's tasks page by page and records each page's verdicts in one ledger transaction; the ledger
records each annotation once, so an interrupted pull is simply run again.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from skyeye_data.io import atomic_path
from skyeye_data.review.corrections import (
    ANSWER_CONTROL,
    TaskDataError,
    conversation_rectangles,
    verdict_from_task,
)
from skyeye_data.review.ledger import ReviewLedger, Verdict
from skyeye_data.review.queue import QueuedSample, read_images

log = logging.getLogger(__name__)

URL_ENV = "LABEL_STUDIO_URL"
API_KEY_ENV = "LABEL_STUDIO_API_KEY"
DOCUMENT_ROOT_ENV = "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT"
KINDS = ("caption_vqa", "grounding", "conversa")
GROUNDING_TASKS = {"refer", "identify", "detection", "grounding"}
IMAGE_FOLDER = "skyeye-review"
MODEL_VERSION = "skyeye-sample"
CONFIG_DIR = Path(__file__).resolve().parents[2] / "review"


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


def ensure_project(client, title: str, kind: str) -> int:
    existing = find_project(client, title)
    if existing is not None:
        return existing
    project = client.projects.create(
        title=title,
        label_config=label_config(kind),
        description="SkyEye samples waiting for human review (pushed by `skyeye review push`).",
        show_collab_predictions=True,  # the sample's answer and boxes appear pre-filled ...
        model_version=MODEL_VERSION,  # ... from the predictions push writes
    )
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


def review_kind(sample: Mapping[str, Any]) -> str:
    users = [t for t in sample["conversation"] if t["role"] == "user"]
    if len(users) > 1 or sample.get("task") == "conversation":
        return "conversa"
    if sample.get("task") in GROUNDING_TASKS or "{<" in json.dumps(sample["conversation"]):
        return "grounding"
    return "caption_vqa"


IMAGE_SUFFIX = {"jpeg": "jpg", "jpg": "jpg", "png": "png", "tif": "tif", "tiff": "tif", "bmp": "bmp", "webp": "webp"}


def image_file_name(image_id: str, image_format: str) -> str:
    return f"{image_id}.{IMAGE_SUFFIX.get((image_format or 'png').lower(), 'img')}"


def local_file_url(folder: Path, root: Path, file_name: str) -> str:
    return f"/data/local-files/?d={(folder / file_name).relative_to(root).as_posix()}"


def task_payload(queued: QueuedSample, image: Mapping[str, Any], image_url: str) -> dict[str, Any]:
    """A Label Studio task: the data shown (and read back by pull) and the sample as a prediction."""
    sample = queued.sample
    conversation = [{"role": t["role"], "content": t["content"]} for t in sample["conversation"]]
    width, height = int(image["width"]), int(image["height"])
    users = [t["content"] for t in conversation if t["role"] == "user"]
    answers = [t["content"] for t in conversation if t["role"] == "assistant"]
    data = {
        "image": image_url,
        "sample_id": sample["id"],
        "fingerprint": queued.fingerprint,
        "source": sample["source"],
        "task": sample.get("task"),
        "image_ids": list(sample["image_ids"]),
        "width": width,
        "height": height,
        "reasons": ", ".join(queued.reasons),
        "instruction": users[-1] if users else "",
        "answer": answers[-1] if answers else "",
        "dialog": [dict(turn, index=i) for i, turn in enumerate(conversation)],
    }
    return {"data": data, "predictions": [{"model_version": MODEL_VERSION, "result": prediction_result(review_kind(sample), conversation, width, height)}]}


def prediction_result(kind: str, conversation: list[dict[str, str]], width: int, height: int) -> list[dict]:
    """The sample as Label Studio pre-annotations: its boxes as rectangles, its texts in the editors."""
    result = [] if kind == "caption_vqa" else conversation_rectangles(conversation, width, height)
    if kind == "conversa":
        for i, turn in enumerate(conversation):
            result.append(_textarea(f"correction_{i}", f"turn_{i}", turn["content"], f"text{i}"))
    else:
        answers = [t["content"] for t in conversation if t["role"] == "assistant"]
        if answers:
            result.append(_textarea(ANSWER_CONTROL, "image", answers[-1], "answer"))
    return result


def _textarea(control: str, target: str, text: str, region_id: str) -> dict[str, Any]:
    return {"id": region_id, "from_name": control, "to_name": target, "type": "textarea", "value": {"text": [text]}}


def task_key(data: Mapping[str, Any]) -> tuple[str, str] | None:
    if "sample_id" in data and "fingerprint" in data:
        return (str(data["sample_id"]), str(data["fingerprint"]))
    return None


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
    projects: dict[str, int] = field(default_factory=dict)  # title → id


def push(
    client,
    out: Path,
    name: str,
    queued: Sequence[QueuedSample],
    root: Path,
    batch_size: int = 100,
    retries: int = 3,
    advance: Advance = _no_progress,
) -> PushSummary:
    """Import the queued samples as tasks of the review projects (only the ones not there yet)."""
    summary = PushSummary()
    folder = root / IMAGE_FOLDER / slug(name)
    folder.mkdir(parents=True, exist_ok=True)
    by_kind: dict[str, list[QueuedSample]] = {}
    for item in queued:
        by_kind.setdefault(review_kind(item.sample), []).append(item)
    for kind in KINDS:
        items = by_kind.get(kind, [])
        if not items:
            continue
        title = project_title(name, kind)
        project_id = ensure_project(client, title, kind)
        summary.projects[title] = project_id
        ensure_local_storage(client, project_id, folder)
        existing = existing_task_keys(client, project_id)
        new = [q for q in items if (q.sample["id"], q.fingerprint) not in existing]
        summary.already_there[kind] = len(items) - len(new)
        advance(len(items) - len(new))
        payloads = _payloads_with_images(out, new, folder, root, summary)
        advance(len(new) - len(payloads))
        imported = 0
        for start in range(0, len(payloads), batch_size):
            batch = payloads[start : start + batch_size]
            imported += import_batch(client, project_id, batch, retries)
            advance(len(batch))
        summary.imported[kind] = imported
    return summary


def _payloads_with_images(out: Path, items: list[QueuedSample], folder: Path, root: Path, summary: PushSummary) -> list[dict]:
    images = read_images(out, (q.sample["image_ids"][0] for q in items if q.sample["image_ids"]))
    payloads = []
    for item in items:
        image_id = item.sample["image_ids"][0] if item.sample["image_ids"] else None
        image = images.get(image_id)
        if image is None:
            summary.missing_images.append(item.sample["id"])
            continue
        file_name = image_file_name(image_id, image.get("format") or "png")
        write_image_once(folder / file_name, image["bytes"])
        payloads.append(task_payload(item, image, local_file_url(folder, root, file_name)))
    return payloads


def write_image_once(path: Path, data: bytes) -> None:
    if path.exists():
        return  # named by content hash: an existing file already holds these bytes
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


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


# -- pull and import ------------------------------------------------------------------------------------


@dataclass
class PullSummary:
    tasks: int = 0
    annotations: int = 0
    recorded: int = 0  # rows added or updated in the ledger
    no_verdict: int = 0  # skipped annotations, or neither a decision nor an edit
    invalid: int = 0  # tasks whose data no longer matches their fingerprint
    projects: dict[str, int] = field(default_factory=dict)


def verdicts_of_tasks(tasks: Iterable[Mapping[str, Any]], summary: PullSummary) -> list[Verdict]:
    """The verdicts of a page of tasks (plain dicts: id, data, project, annotations)."""
    verdicts = []
    for task in tasks:
        summary.tasks += 1
        for annotation in task.get("annotations") or []:
            summary.annotations += 1
            try:
                verdict = verdict_from_task(task, annotation, task.get("project"))
            except TaskDataError as error:
                summary.invalid += 1
                log.warning("task %s, annotation %s ignored: %s", task.get("id"), annotation.get("id"), error)
                continue
            if verdict is None:
                summary.no_verdict += 1
            else:
                verdicts.append(verdict)
    return verdicts


def _task_dict(task, project_id: int) -> dict[str, Any]:
    return {"id": task.id, "data": task.data or {}, "project": project_id, "annotations": task.annotations or []}


def pull(client, name: str, ledger: ReviewLedger, page_size: int = 100, advance: Advance = _no_progress) -> PullSummary:
    """Record the verdicts of every review project of ``name``; one ledger transaction per page."""
    summary = PullSummary()
    for kind in KINDS:
        title = project_title(name, kind)
        project_id = find_project(client, title)
        if project_id is None:
            continue
        summary.projects[title] = project_id
        for page in task_pages(client, project_id, page_size):
            verdicts = verdicts_of_tasks((_task_dict(t, project_id) for t in page), summary)
            summary.recorded += ledger.record(verdicts)
            advance(len(page))
    if not summary.projects:
        raise ReviewBridgeError(f"no review project named {name!r} on the server (push creates them)")
    return summary


def load_export(path: Path) -> list[dict[str, Any]]:
    try:
        tasks = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ReviewBridgeError(f"cannot read the Label Studio export {path}: {error}") from error
    if not isinstance(tasks, list) or not all(isinstance(t, dict) and "data" in t and "id" in t for t in tasks):
        raise ReviewBridgeError(f"{path} is not a Label Studio JSON export (a list of tasks with id, data, annotations)")
    return tasks


def import_export(path: Path, ledger: ReviewLedger, batch_size: int = 500, advance: Advance = _no_progress) -> PullSummary:
    """Record the verdicts of a Label Studio JSON export file, offline (the same verdicts a pull gives)."""
    summary = PullSummary()
    tasks = load_export(path)
    for start in range(0, len(tasks), batch_size):
        page = tasks[start : start + batch_size]
        summary.recorded += ledger.record(verdicts_of_tasks(page, summary))
        advance(len(page))
    return summary
