"""Helpers of the hostile-input suite (issue 18): one mutation of the mini corpus per case, built for real.

Each case copies the session's mini corpus (``skyeye synth RAW --scale mini``, made once), mutates
it with real filesystem objects (symlinks, FIFOs, devices, corrupt image bodies), runs
``skyeye build recipes/demo.yaml --include-unreviewed`` in a subprocess with a timeout (a hang fails
the test instead of blocking the suite) and returns an :class:`Outcome` to assert on.

Every build, whatever the case, is also checked for what must always hold (:meth:`Case.build`):
exit status 0 or 2 and never a traceback; on success the counts reconcile, every stored image decodes
in full, no output file holds the canary planted in every file outside the raw root, and no
quarantine reason, manifest or card holds an absolute path of the test's folders.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from skyeye_data.sources._pth import load_plain_pth

REPO = Path(__file__).resolve().parents[2]
SKYEYE = [sys.executable, "-m", "skyeye_data.cli"] if not (Path(sys.executable).parent / "skyeye").exists() else [
    str(Path(sys.executable).parent / "skyeye")
]
DEMO_RECIPE = REPO / "recipes" / "demo.yaml"
BUILD_TIMEOUT_S = 240  # the machine is shared; a clean mini build takes a few seconds
CANARY = f"SKYEYE-CANARY-{uuid.uuid4().hex}"


@dataclass
class Outcome:
    rc: int
    output: str
    out: Path
    quarantine: list[dict]
    manifest: dict | None

    def entries(self, source: str | None = None, raw_file: str | None = None, reason: str | None = None) -> list[dict]:
        """Quarantine lines matching all the given parts (``raw_file``/``reason``: substrings)."""
        return [
            e
            for e in self.quarantine
            if (source is None or e.get("source") == source)
            and (raw_file is None or raw_file in (e.get("raw_file") or ""))
            and (reason is None or reason in (e.get("reason") or ""))
        ]

    def expect_quarantined(self, source: str, raw_file: str, reason: str) -> dict:
        """Exactly the outcome 'quarantined with this reason': at least one such line; returns the first."""
        assert self.rc == 0, self.output[-3000:]
        found = self.entries(source, raw_file, reason)
        assert found, f"no quarantine line for {source} {raw_file!r} with {reason!r}; lines:\n" + "\n".join(
            json.dumps(e) for e in self.entries(source)
        )
        return found[0]

    def source(self, name: str) -> dict:
        assert self.manifest is not None
        return self.manifest["sources"][name]

    def records(self, name: str) -> list[dict]:
        return pq.read_table(self.out / "records" / f"{name}.parquet").to_pylist()


class Case:
    """One hostile case: a private copy of the mini corpus, an outside folder, an output folder."""

    def __init__(self, base: Path, corpus: Path):
        self.base = base
        self.raw = base / "raw"
        shutil.copytree(corpus, self.raw, symlinks=True)
        self.out = base / "out"
        self.outside = base / "outside"  # NOT under the raw root: nothing of it may reach an output
        self.outside.mkdir()
        plant_canaries(self.outside)

    def link(self, path: Path, target: Path | str) -> None:
        """Replace ``path`` with a real symlink to ``target``."""
        path.unlink()
        path.symlink_to(target)

    def rsvg_as_json(self) -> Path:
        """RSVG in its JSON-export layout (which the converter accepts), so a case can edit the lists as text.

        The synthetic corpus writes the released ``rsvg_<split>.pth`` files; their plain lists become
        ``rsvg_<split>.json`` (``[image_file, [x1, y1, x2, y2], expression, extra]`` per entry).
        """
        folder = self.src("rsvg")
        for pth in sorted(folder.glob("rsvg_*.pth")):
            pth.with_suffix(".json").write_text(json.dumps([list(e) for e in load_plain_pth(pth.read_bytes())]))
            pth.unlink()
        return folder

    def src(self, name: str) -> Path:
        return self.raw / name

    def find(self, source: str, pattern: str) -> Path:
        """The first file (sorted) under RAW/<source> matching a glob pattern: robust to layout variants."""
        found = sorted(p for p in self.src(source).rglob(pattern) if p.is_file() or p.is_symlink())
        assert found, f"nothing matches {pattern} under {source}"
        return found[0]

    def recipe(self, extra_yaml: str) -> Path:
        """The demo recipe plus top-level YAML (e.g. an ``input:`` section)."""
        path = self.base / "recipe.yaml"
        path.write_text(DEMO_RECIPE.read_text(encoding="utf-8") + "\n" + extra_yaml, encoding="utf-8")
        return path

    def run(self, *args: str, timeout: float = BUILD_TIMEOUT_S, env: dict | None = None) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(
                [*SKYEYE, *args], cwd=self.base, capture_output=True, text=True, timeout=timeout,
                env={**os.environ, "COLUMNS": "200", **(env or {})},
            )  # fmt: skip
        except subprocess.TimeoutExpired as error:
            pytest.fail(f"`skyeye {' '.join(args)}` hung: no result after {timeout} s ({error})")

    def build(self, *extra: str, recipe: Path | None = None, out: Path | None = None, env: dict | None = None) -> Outcome:
        out = out or self.out
        done = self.run("build", str(recipe or DEMO_RECIPE), "--raw-root", str(self.raw), "--out", str(out),
                        "--include-unreviewed", *extra, env=env)  # fmt: skip
        output = done.stdout + done.stderr
        assert "Traceback" not in output, output[-4000:]
        assert done.returncode in (0, 2), f"rc {done.returncode}\n{output[-4000:]}"
        quarantine, manifest = [], None
        if done.returncode == 0:
            manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
            quarantine = [json.loads(line) for line in (out / "quarantine.jsonl").read_text(encoding="utf-8").splitlines()]
            check_invariants(self, out, manifest)
        return Outcome(done.returncode, output, out, quarantine, manifest)


def plant_canaries(folder: Path) -> None:
    """Files outside the raw root, each holding the canary in its bytes (text, XML, a JPEG comment)."""
    (folder / "passwd").write_text(f"root:x:0:0:{CANARY}:/root:/bin/bash\n" * 5)
    (folder / ".env").write_text(f"LABEL_STUDIO_API_KEY={CANARY}\n1.tif:what is {CANARY}?yes\n")
    (folder / "secret.xml").write_text(
        "<annotation><filename>secret.jpg</filename><size><width>64</width><height>64</height></size>"
        f"<object><name>airplane</name><description>{CANARY}</description><bndbox><xmin>1</xmin><ymin>1</ymin>"
        "<xmax>30</xmax><ymax>30</ymax></bndbox></object></annotation>"
    )
    image = Image.new("RGB", (64, 64), (200, 30, 30))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", comment=CANARY.encode())
    (folder / "secret.jpg").write_bytes(buffer.getvalue())
    (folder / "secret.tif").write_bytes(buffer.getvalue())
    (folder / "secret.json").write_text(json.dumps([["secret.jpg", [1, 1, 30, 30], CANARY]]))


def check_invariants(case: Case, out: Path, manifest: dict) -> None:
    assert manifest["balanced"], {n: s for n, s in manifest["sources"].items() if not s["balanced"]}
    canary = CANARY.encode()
    leaked = [p for p in out.rglob("*") if p.is_file() and canary in p.read_bytes()]
    assert leaked == [], f"bytes of a file outside the raw root reached {leaked}"
    private = str(case.base)
    outputs = {name: (out / name).read_text(encoding="utf-8") for name in ("quarantine.jsonl", "README.md")}
    # the recipe may name folders itself; the warnings name raw folders as RAW/<folder>, never locally
    outputs["manifest.json"] = json.dumps({k: v for k, v in manifest.items() if k != "recipe"})
    for name, text in outputs.items():
        assert private not in text, f"{name} holds an absolute local path"
    for shard in sorted((out / "images").glob("*.parquet")):
        for row in pq.read_table(shard, columns=["image_id", "bytes"]).to_pylist():
            with Image.open(io.BytesIO(row["bytes"])) as image:
                image.load()  # every stored image decodes in full
