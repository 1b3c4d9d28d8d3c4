"""``skyeye review ...``: queue, push, pull, import, report.

Label Studio settings come from the environment only: ``LABEL_STUDIO_URL``, ``LABEL_STUDIO_API_KEY``
and, for ``push --images local-files``, ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT`` (or ``--document-root``).

The ledger is named once for the whole loop: ``review.ledger`` in the recipe, or ``--ledger`` on
build, queue, push, pull, import and report (``--ledger`` wins).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

review_app = typer.Typer(
    name="review",
    help="Human review through Label Studio: what waits, push tasks, pull verdicts, ledger reports.",
    no_args_is_help=True,
)

RecipeOption = Annotated[
    Optional[Path],
    typer.Option("--recipe", help="YAML recipe whose `review:` section is the routing policy (default policy without)"),
]
LedgerOption = Annotated[
    Optional[Path], typer.Option("--ledger", help="SQLite review ledger (default: the recipe's review.ledger)")
]


def load_policy(recipe: Path | None):
    """The `review:` section of a recipe (or of any YAML file), or the default policy."""
    import yaml
    from pydantic import ValidationError

    from skyeye_data.console import fail
    from skyeye_data.review.policy import ReviewPolicy

    if recipe is None:
        return ReviewPolicy()
    try:
        document = yaml.safe_load(recipe.read_text(encoding="utf-8")) or {}
        return ReviewPolicy.from_recipe_section(document.get("review") if isinstance(document, dict) else None)
    except (OSError, yaml.YAMLError) as error:
        raise fail(f"cannot read {recipe}: {error}")
    except ValidationError as error:
        raise fail(f"{recipe}: bad `review:` section:\n{error}")


def ledger_path(explicit: Path | None, policy, required: bool) -> Path | None:
    from skyeye_data.console import fail

    path = explicit or policy.ledger
    if path is None and required:
        raise fail("name the review ledger: --ledger PATH (or review.ledger in the --recipe)")
    return path


def open_ledger(path: Path | None, must_exist: bool = False):
    from skyeye_data.console import fail
    from skyeye_data.review.ledger import ReviewLedger

    if path is None:
        return None
    if must_exist and not path.exists():
        raise fail(f"review ledger {path} does not exist")
    return ReviewLedger(path)


def read_only_ledger(path: Path | None):
    """The ledger for commands that only read verdicts (queue, push): an absent file holds no
    verdicts and is not created."""
    if path is None or not path.exists():
        return None
    return open_ledger(path)


def collect_queue(out: Path, policy, ledger):
    from skyeye_data.console import fail
    from skyeye_data.review.queue import BuildOutputError, QueueSummary, read_samples, review_queue

    summary = QueueSummary()
    try:
        queued = list(review_queue(read_samples(out), policy, ledger, summary))
    except BuildOutputError as error:
        raise fail(str(error))
    return queued, summary


@review_app.command("queue")
def queue_command(
    out: Annotated[Path, typer.Argument(help="build output folder (samples/ and review-queue/)")],
    recipe: RecipeOption = None,
    ledger: LedgerOption = None,
) -> None:
    """Show what waits for review in a build output, by source and by reason."""
    from rich.table import Table

    from skyeye_data.console import stdout

    policy = load_policy(recipe)
    with_ledger = read_only_ledger(ledger_path(ledger, policy, required=False))
    queued, summary = collect_queue(out, policy, with_ledger)
    reasons = sorted(summary.by_reason)
    table = Table(title=f"review queue of {out}: {summary.waiting} waiting, {summary.reviewed} already reviewed")
    table.add_column("source", style="bold")
    table.add_column("waiting", justify="right")
    for reason in reasons:
        table.add_column(reason, justify="right")
    for source, waiting in sorted(summary.by_source.items()):
        table.add_row(source, str(waiting), *(str(summary.by_source_reason[(source, r)] or "") for r in reasons))
    table.add_row("[bold]all", f"[bold]{summary.waiting}", *(f"[bold]{summary.by_reason[r]}" for r in reasons))
    stdout.print(table)


@review_app.command("push")
def push_command(
    out: Annotated[Path, typer.Argument(help="build output folder (samples/, review-queue/, images/)")],
    project: Annotated[str, typer.Option("--project", help="review name; projects 'NAME · <kind>' are created or reused")],
    recipe: RecipeOption = None,
    ledger: LedgerOption = None,
    images: Annotated[
        str,
        typer.Option(help="how the server gets the images: upload (through the API; default) or local-files (shared filesystem)"),
    ] = "upload",
    document_root: Annotated[
        Optional[Path],
        typer.Option(help="for --images local-files: the server's LOCAL_FILES_DOCUMENT_ROOT (default: $LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT)"),
    ] = None,
    overlap: Annotated[int, typer.Option(min=1, help="annotators per task (Label Studio's maximum_annotations)")] = 1,
    batch_size: Annotated[int, typer.Option(min=1, help="tasks per import request")] = 100,
    retries: Annotated[int, typer.Option(min=0, help="retries of a failed import request")] = 3,
) -> None:
    """Import the queued samples as Label Studio tasks (only those not pushed before; a crashed push resumes)."""
    from skyeye_data.console import fail, progress_bar, stdout
    from skyeye_data.review import labelstudio

    policy = load_policy(recipe)
    with_ledger = read_only_ledger(ledger_path(ledger, policy, required=False))
    queued, _ = collect_queue(out, policy, with_ledger)
    if images not in ("upload", "local-files"):
        raise fail(f"--images must be upload or local-files, not {images!r}")
    try:
        root = labelstudio.document_root(document_root) if images == "local-files" else None
        client = labelstudio.connect()
        with progress_bar() as progress:
            bar = progress.add_task("push", total=len(queued))
            summary = labelstudio.push(
                client, out, project, queued, images=images, root=root, batch_size=batch_size, retries=retries,
                overlap=overlap, advance=lambda n: progress.advance(bar, n),
            )  # fmt: skip
    except labelstudio.ReviewBridgeError as error:
        raise fail(str(error))
    except Exception as error:  # noqa: BLE001 (SDK and transport errors: say what failed, no traceback)
        raise fail(f"push failed: {type(error).__name__}: {error}")
    url = labelstudio.os.environ.get(labelstudio.URL_ENV, "").rstrip("/")
    for kind, count in summary.imported.items():
        title = labelstudio.project_title(project, kind)
        stdout.print(
            f"{kind}: {count} new tasks, {summary.already_there.get(kind, 0)} already in the project; "
            f"label them at {url}{labelstudio.labeling_url(summary.projects[title])}"
        )
    if summary.missing_images:
        stdout.print(f"[yellow]{len(summary.missing_images)} samples skipped: their image is not in {out}/images")
    if summary.bad_images:
        stdout.print(f"[yellow]{len(summary.bad_images)} samples skipped: their image cannot be decoded (see warnings)")
    if not queued:
        stdout.print("nothing waits for review")


@review_app.command("pull")
def pull_command(
    project: Annotated[str, typer.Option("--project", help="the review name given to push")],
    ledger: LedgerOption = None,
    recipe: RecipeOption = None,
    page_size: Annotated[int, typer.Option(min=1, help="tasks per page (one ledger transaction each)")] = 100,
) -> None:
    """Read the annotations of the review projects and record the verdicts in the ledger."""
    from skyeye_data.console import fail, progress_bar
    from skyeye_data.review import labelstudio
    from skyeye_data.review import pull as review_pull

    policy = load_policy(recipe)
    path = ledger_path(ledger, policy, required=True)
    try:
        client = labelstudio.connect()
        with open_ledger(path) as book, progress_bar() as progress:
            bar = progress.add_task("pull", total=None)
            summary = review_pull.pull(client, project, book, page_size, advance=lambda n: progress.advance(bar, n))
    except labelstudio.ReviewBridgeError as error:
        raise fail(str(error))
    except Exception as error:  # noqa: BLE001
        raise fail(f"pull failed (the ledger keeps every page recorded so far; run pull again): {type(error).__name__}: {error}")
    print_pull_summary(summary, path)


def print_pull_summary(summary, path: Path) -> None:
    from skyeye_data.console import stdout

    stdout.print(
        f"{summary.tasks} tasks, {summary.annotations} annotations: {summary.recorded} verdicts recorded or updated "
        f"in {path}, {summary.no_verdict} without a verdict, {summary.invalid} tasks with edited data (see warnings), "
        f"{len(summary.invalid_verdicts)} invalid verdicts"
    )
    for line in summary.invalid_verdicts:
        stdout.print(f"[yellow]invalid verdict, not recorded:[/] {line}")


@review_app.command("import")
def import_command(
    export: Annotated[Path, typer.Argument(help="Label Studio JSON export file", exists=True, dir_okay=False)],
    ledger: LedgerOption = None,
    recipe: RecipeOption = None,
) -> None:
    """Record the verdicts of a Label Studio JSON export, offline (same result as a pull)."""
    from skyeye_data.console import fail, progress_bar
    from skyeye_data.review import labelstudio
    from skyeye_data.review import pull as review_pull

    policy = load_policy(recipe)
    path = ledger_path(ledger, policy, required=True)
    try:
        # with the server's settings in the environment, annotators are named by e-mail as in a pull
        emails = review_pull.user_emails(labelstudio.connect()) if labelstudio.has_settings() else None
        with open_ledger(path) as book, progress_bar() as progress:
            bar = progress.add_task("import", total=None)
            summary = review_pull.import_export(export, book, advance=lambda n: progress.advance(bar, n), emails=emails)
    except labelstudio.ReviewBridgeError as error:
        raise fail(str(error))
    print_pull_summary(summary, path)


@review_app.command("report")
def report_command(
    ledger: LedgerOption = None,
    recipe: RecipeOption = None,
) -> None:
    """Per annotator: tasks, accept / edit / reject rates, seconds per task; agreement on overlapping tasks."""
    from rich.table import Table

    from skyeye_data.console import stdout
    from skyeye_data.review.report import review_report

    policy = load_policy(recipe)
    with open_ledger(ledger_path(ledger, policy, required=True), must_exist=True) as book:
        report = review_report(book.verdicts())
    table = Table(title=f"review ledger: {report.samples_reviewed} samples reviewed, {report.samples_reviewed_twice} more than once")
    columns = ("annotator", "tasks", "accept", "edit", "reject", "s / task", "pairs", "agreement")
    for column in columns:
        table.add_column(column, justify="left" if column == "annotator" else "right")
    for name, stats in sorted(report.annotators.items()):
        agreement = f"{stats.exact_agreements / stats.pairs:.0%}" if stats.pairs else "-"
        pace = f"{stats.seconds_per_task:.1f}" if stats.seconds_per_task is not None else "-"
        rates = (f"{stats.rate(k):.0%}" for k in ("accepted", "corrected", "rejected"))
        table.add_row(name, str(len(stats.tasks)), *rates, pace, str(stats.pairs), agreement)
    stdout.print(table)
    if report.pairs:
        stdout.print(
            f"agreement over {report.pairs} pairs: exact {report.exact_agreement:.1%}, keep/drop {report.keep_drop_agreement:.1%}"
        )


def register(app: typer.Typer) -> None:
    app.add_typer(review_app, name="review")
