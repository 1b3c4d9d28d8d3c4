"""Pull: the annotations of the review projects (or of a JSON export) back into the ledger as verdicts.

Pull reads each project's tasks page by page and records each page's verdicts in one ledger
transaction; the ledger records each annotation once, so an interrupted pull is simply run again.
Annotators are named as Label Studio shows them: by e-mail (the server's user list).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from skyeye_data.review.corrections import InvalidVerdict, TaskDataError, verdict_from_task
from skyeye_data.review.labelstudio import Advance, ReviewBridgeError, _no_progress, find_project, project_title, task_pages
from skyeye_data.review.ledger import ReviewLedger, Verdict
from skyeye_data.review.tasks import KINDS

log = logging.getLogger(__name__)


@dataclass
class PullSummary:
    tasks: int = 0
    annotations: int = 0
    recorded: int = 0  # rows added or updated in the ledger
    no_verdict: int = 0  # skipped annotations, or neither a decision nor an edit
    invalid: int = 0  # tasks whose data no longer matches their fingerprint
    invalid_verdicts: list[str] = field(default_factory=list)  # "task N (sample): why" for contradictory annotations
    projects: dict[str, int] = field(default_factory=dict)


def verdicts_of_tasks(tasks: Iterable[Mapping[str, Any]], summary: PullSummary, emails: Mapping[int, str] | None = None) -> list[Verdict]:
    """The verdicts of a page of tasks (plain dicts: id, data, project, annotations)."""
    verdicts = []
    for task in tasks:
        summary.tasks += 1
        for annotation in task.get("annotations") or []:
            summary.annotations += 1
            try:
                verdict = verdict_from_task(task, annotation, task.get("project"), emails)
            except TaskDataError as error:
                summary.invalid += 1
                log.warning("task %s, annotation %s ignored: %s", task.get("id"), annotation.get("id"), error)
                continue
            except InvalidVerdict as error:
                sample = (task.get("data") or {}).get("sample_id")
                summary.invalid_verdicts.append(f"task {task.get('id')} ({sample}), annotation {annotation.get('id')}: {error}")
                continue
            if verdict is None:
                summary.no_verdict += 1
            else:
                verdicts.append(verdict)
    return verdicts


def _task_dict(task, project_id: int) -> dict[str, Any]:
    return {"id": task.id, "data": task.data or {}, "project": project_id, "annotations": task.annotations or []}


def user_emails(client) -> dict[int, str]:
    """user id → e-mail, the name Label Studio shows for an annotator."""
    return {int(user.id): str(user.email) for user in client.users.list() if getattr(user, "email", None)}


def pull(client, name: str, ledger: ReviewLedger, page_size: int = 100, advance: Advance = _no_progress) -> PullSummary:
    """Record the verdicts of every review project of ``name``; one ledger transaction per page."""
    summary = PullSummary()
    emails = user_emails(client)
    for kind in KINDS:
        title = project_title(name, kind)
        project_id = find_project(client, title)
        if project_id is None:
            continue
        summary.projects[title] = project_id
        for page in task_pages(client, project_id, page_size):
            verdicts = verdicts_of_tasks((_task_dict(t, project_id) for t in page), summary, emails)
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


def import_export(
    path: Path, ledger: ReviewLedger, batch_size: int = 500, advance: Advance = _no_progress, emails: Mapping[int, str] | None = None
) -> PullSummary:
    """Record the verdicts of a Label Studio JSON export file, offline (the same verdicts a pull gives).

    An export names annotators by user id only; ``emails`` (from the server's user list) names them
    as a pull does, else they are recorded as ``user:<id>``.
    """
    summary = PullSummary()
    tasks = load_export(path)
    for start in range(0, len(tasks), batch_size):
        page = tasks[start : start + batch_size]
        summary.recorded += ledger.record(verdicts_of_tasks(page, summary, emails))
        advance(len(page))
    return summary
