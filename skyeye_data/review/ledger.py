"""The review ledger: every verdict a person gave, in one SQLite file outside the build output.

A verdict is keyed by the sample id *and* the content fingerprint the reviewer saw, so a rebuild that
changes a sample's content makes the old verdict inapplicable instead of wrong. Each Label Studio
annotation is recorded once (UNIQUE task/annotation id): pulling again, or importing an export of
the same project, adds nothing twice; an annotation edited later in Label Studio replaces its row.
Writers use one transaction per batch, so an interrupted pull leaves whole batches or nothing.

Re-review: a ``corrected`` verdict stores the fingerprint of the content it produced
(``corrected_fingerprint``). A later review of that corrected content is keyed by it, so the rows of
one sample form a chain, original fingerprint → corrected content → later verdicts, which
:mod:`skyeye_data.review.apply` follows to the latest verdict.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Literal

VerdictKind = Literal["accepted", "rejected", "corrected"]
VERDICT_KINDS: tuple[str, ...] = ("accepted", "rejected", "corrected")

SCHEMA = """
CREATE TABLE IF NOT EXISTS verdicts (
    row_id                 INTEGER PRIMARY KEY,
    sample_id              TEXT NOT NULL,
    fingerprint            TEXT NOT NULL,
    verdict                TEXT NOT NULL CHECK (verdict IN ('accepted', 'rejected', 'corrected')),
    corrected_conversation TEXT,            -- JSON list of {role, content}, only for 'corrected'
    corrected_boxes        TEXT,            -- JSON: the corrected pixel boxes, for audits
    annotator              TEXT NOT NULL,
    reviewed_at            TEXT NOT NULL,   -- when the annotation was last saved (UTC ISO 8601)
    project_id             INTEGER,
    task_id                INTEGER NOT NULL,
    annotation_id          INTEGER NOT NULL,
    corrected_fingerprint  TEXT,            -- fingerprint of the corrected content, only for 'corrected'
    lead_time_s            REAL,            -- seconds the annotator spent (Label Studio's lead_time)
    UNIQUE (task_id, annotation_id),
    CHECK ((verdict = 'corrected') = (corrected_conversation IS NOT NULL))
);
CREATE INDEX IF NOT EXISTS verdicts_by_sample ON verdicts (sample_id, fingerprint);
CREATE TABLE IF NOT EXISTS ledger_info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
SCHEMA_VERSION = "2"
# columns added since schema 1: a ledger written by an older toolkit is upgraded in place
ADDED_COLUMNS = {"corrected_fingerprint": "TEXT", "lead_time_s": "REAL"}


@dataclass(frozen=True)
class Verdict:
    sample_id: str
    fingerprint: str
    verdict: VerdictKind
    annotator: str
    reviewed_at: str
    task_id: int
    annotation_id: int
    project_id: int | None = None
    corrected_conversation: list[dict[str, str]] | None = None
    corrected_boxes: list | None = None
    corrected_fingerprint: str | None = None
    lead_time_s: float | None = None

    def __post_init__(self) -> None:
        if self.verdict not in VERDICT_KINDS:
            raise ValueError(f"unknown verdict {self.verdict!r}")
        if (self.verdict == "corrected") != (self.corrected_conversation is not None):
            raise ValueError("a corrected verdict carries the corrected conversation, and only it does")


_COLUMNS = (
    "sample_id", "fingerprint", "verdict", "corrected_conversation", "corrected_boxes", "annotator",
    "reviewed_at", "project_id", "task_id", "annotation_id", "corrected_fingerprint", "lead_time_s",
)  # fmt: skip


def _row_of(verdict: Verdict) -> tuple:
    return (
        verdict.sample_id,
        verdict.fingerprint,
        verdict.verdict,
        None if verdict.corrected_conversation is None else json.dumps(verdict.corrected_conversation, ensure_ascii=False),
        None if verdict.corrected_boxes is None else json.dumps(verdict.corrected_boxes),
        verdict.annotator,
        verdict.reviewed_at,
        verdict.project_id,
        verdict.task_id,
        verdict.annotation_id,
        verdict.corrected_fingerprint,
        verdict.lead_time_s,
    )


def _verdict_of(row: sqlite3.Row) -> Verdict:
    return Verdict(
        sample_id=row["sample_id"],
        fingerprint=row["fingerprint"],
        verdict=row["verdict"],
        annotator=row["annotator"],
        reviewed_at=row["reviewed_at"],
        task_id=row["task_id"],
        annotation_id=row["annotation_id"],
        project_id=row["project_id"],
        corrected_conversation=None if row["corrected_conversation"] is None else json.loads(row["corrected_conversation"]),
        corrected_boxes=None if row["corrected_boxes"] is None else json.loads(row["corrected_boxes"]),
        corrected_fingerprint=row["corrected_fingerprint"],
        lead_time_s=row["lead_time_s"],
    )


# An annotation seen again replaces its row only when it was saved later (an annotator's edit);
# the same annotation pulled twice changes nothing.
_UPSERT = f"""
INSERT INTO verdicts ({", ".join(_COLUMNS)}) VALUES ({", ".join("?" * len(_COLUMNS))})
ON CONFLICT (task_id, annotation_id) DO UPDATE SET
    {", ".join(f"{c} = excluded.{c}" for c in _COLUMNS if c not in ("task_id", "annotation_id"))}
WHERE excluded.reviewed_at > verdicts.reviewed_at
"""


class ReviewLedger:
    """The SQLite ledger. Open with ``ReviewLedger(path)``; use as a context manager to close it."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we open transactions ourselves (BEGIN IMMEDIATE), one per batch
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        with self.transaction():
            for statement in _statements(SCHEMA):
                self._db.execute(statement)
            present = {row[1] for row in self._db.execute("PRAGMA table_info(verdicts)")}
            for column, kind in ADDED_COLUMNS.items():
                if column not in present:
                    self._db.execute(f"ALTER TABLE verdicts ADD COLUMN {column} {kind}")
            self._db.execute("INSERT OR REPLACE INTO ledger_info VALUES ('schema_version', ?)", (SCHEMA_VERSION,))

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "ReviewLedger":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """All statements inside commit together, or none does."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def record(self, verdicts: Iterable[Verdict]) -> int:
        """Record a batch of verdicts in one transaction; returns how many rows were added or updated."""
        changed = 0
        with self.transaction() as db:
            for verdict in verdicts:
                changed += db.execute(_UPSERT, _row_of(verdict)).rowcount
        return changed

    def verdicts(self) -> list[Verdict]:
        rows = self._db.execute("SELECT * FROM verdicts ORDER BY task_id, annotation_id").fetchall()
        return [_verdict_of(row) for row in rows]

    def verdicts_for(self, sample_id: str, fingerprint: str) -> list[Verdict]:
        rows = self._db.execute(
            "SELECT * FROM verdicts WHERE sample_id = ? AND fingerprint = ? ORDER BY reviewed_at, annotation_id",
            (sample_id, fingerprint),
        ).fetchall()
        return [_verdict_of(row) for row in rows]

    def final_verdict(self, sample_id: str, fingerprint: str) -> Verdict | None:
        """The verdict that applies: the latest saved review of exactly this content.

        A later review overrides an earlier one (a second look is the better informed); a verdict
        given for other content of the same sample id never applies.
        """
        verdicts = self.verdicts_for(sample_id, fingerprint)
        return verdicts[-1] if verdicts else None

    def reviewed_keys(self) -> set[tuple[str, str]]:
        """(sample id, fingerprint) of every sample that has a verdict."""
        return {(r[0], r[1]) for r in self._db.execute("SELECT DISTINCT sample_id, fingerprint FROM verdicts")}

    def count(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM verdicts").fetchone()[0]


def _statements(script: str) -> list[str]:
    # sqlite3.executescript would COMMIT our open transaction first; run the statements one by one
    return [s.strip() for s in script.split(";") if s.strip()]


def ledger_state(path: Path) -> str:
    """A digest of every verdict row, in key order: what a build's output depends on.

    The database file's size and mtime do not say it: in WAL mode a pull's writes may sit in the
    ``-wal`` file while the main file keeps both (a rebuild keyed on them kept a rejected sample).
    Opened read-only, so computing it never creates or changes a ledger.
    """
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as error:
        return f"unreadable: {error}"
    try:
        digest = hashlib.sha256()
        for row in db.execute(f"SELECT {', '.join(_COLUMNS)} FROM verdicts ORDER BY task_id, annotation_id"):
            digest.update(json.dumps(row, default=str).encode() + b"\n")
        return digest.hexdigest()
    except sqlite3.Error as error:  # not a ledger: the review gate says so when it opens it
        return f"unreadable: {error}"
    finally:
        db.close()
