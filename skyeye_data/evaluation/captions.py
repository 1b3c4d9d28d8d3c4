"""Caption metrics with the standard COCO caption evaluation (pycocoevalcap).

BLEU-1..4, METEOR, ROUGE-L and CIDEr (CIDEr-D as implemented by pycocoevalcap), each computed
per dataset with **all** reference captions of an image, after the COCO tokenization: Stanford
PTBTokenizer (``-preserveLines -lowerCase``) with pycocoevalcap's punctuation list removed. These
are the numbers the remote-sensing captioning papers (SkyEyeGPT, GeoChat, RSGPT, ...) report.

Java. pycocoevalcap runs two Java programs: the PTB tokenizer (Stanford CoreNLP 3.4.1) and METEOR
1.5. We call the tokenizer jar ourselves, exactly as ``pycocoevalcap.tokenizer.PTBTokenizer``
does, but with the temporary file outside site-packages (which may be read-only) and with a check
that every caption comes back. METEOR is pycocoevalcap's own wrapper, started once per run and
reused for every dataset (its paraphrase table takes ~15 s to load). When ``java`` is not on
PATH, :func:`require_java` raises :class:`JavaMissingError`; with ``use_java=False`` a documented
fallback runs instead: a regex approximation of the PTB tokenizer and METEOR reported as
unavailable. Fallback figures are close to, but not exactly, the published protocol; the report
says so next to them.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping, Sequence

CAPTION_METRICS: tuple[str, ...] = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr")
JAVA_HINT = (
    "the COCO caption evaluation runs Java (PTB tokenizer and METEOR): install a Java runtime "
    "(e.g. `apt-get install default-jre-headless`), or pass --no-java to score BLEU, ROUGE-L and "
    "CIDEr with a Python approximation of the PTB tokenizer and METEOR marked unavailable"
)
# a last line that is never a caption: PTBTokenizer drops trailing empty lines, and the sentinel
# keeps an empty final caption in place
_SENTINEL = "sentinel"


class CaptionEvalError(RuntimeError):
    """The caption evaluation could not run (Java missing or failing)."""


class JavaMissingError(CaptionEvalError):
    pass


@dataclass
class CaptionScores:
    """Corpus-level caption metrics of one dataset, as fractions (pycocoevalcap's scale)."""

    metrics: dict[str, float]
    count: int
    tokenizer: str  # "ptb" (Stanford PTBTokenizer) or "python-fallback"
    unavailable: list[str] = field(default_factory=list)


def require_java() -> str:
    java = shutil.which("java")
    if java is None:
        raise JavaMissingError(f"java was not found on PATH; {JAVA_HINT}")
    return java


# -- tokenization -------------------------------------------------------------------------------


def _pycocoevalcap_tokenizer_dir() -> Path:
    from pycocoevalcap.tokenizer import ptbtokenizer

    return Path(ptbtokenizer.__file__).resolve().parent


def _strip_punctuation(line: str) -> str:
    from pycocoevalcap.tokenizer.ptbtokenizer import PUNCTUATIONS

    return " ".join(w for w in line.rstrip().split(" ") if w not in PUNCTUATIONS)


def ptb_tokenize(sentences: Sequence[str]) -> list[str]:
    """The COCO tokenization of each sentence (one Java call for all of them)."""
    java = require_java()
    from pycocoevalcap.tokenizer.ptbtokenizer import STANFORD_CORENLP_3_4_1_JAR

    jar = _pycocoevalcap_tokenizer_dir() / STANFORD_CORENLP_3_4_1_JAR
    # one caption a line: any line break inside a caption (\r, U+2028, ...) becomes a space
    lines = [" ".join(s.splitlines()) for s in sentences] + [_SENTINEL]
    with tempfile.TemporaryDirectory(prefix="skyeye-ptb-") as tmp:
        text_file = Path(tmp) / "captions.txt"
        text_file.write_text("\n".join(lines), encoding="utf-8")
        command = [java, "-cp", str(jar), "edu.stanford.nlp.process.PTBTokenizer", "-preserveLines", "-lowerCase",
                   "-encoding", "utf-8", str(text_file)]
        try:
            result = subprocess.run(command, capture_output=True, check=False)
        except OSError as error:
            raise CaptionEvalError(f"could not start the PTB tokenizer ({error}); {JAVA_HINT}") from None
    if result.returncode != 0:
        raise CaptionEvalError(f"the PTB tokenizer failed (exit {result.returncode}): {result.stderr.decode()[-500:]}")
    out = result.stdout.decode("utf-8").split("\n")
    if len(out) < len(lines) or out[len(lines) - 1].strip() != _SENTINEL:
        raise CaptionEvalError(f"the PTB tokenizer returned {len(out)} lines for {len(lines)} captions")
    return [_strip_punctuation(line) for line in out[: len(sentences)]]


# PTB splits clitics ('s, n't) and punctuation off words; this mirrors that closely enough for
# the fallback, then drops punctuation like pycocoevalcap does
_FALLBACK_TOKEN = re.compile(r"[a-z0-9]+(?=n't)|n't|'[a-z]+|[a-z0-9]+(?:[.,][0-9]+)*|[^\sa-z0-9]")


def fallback_tokenize(sentences: Sequence[str]) -> list[str]:
    """A Python approximation of the COCO tokenization, used only when Java is unavailable."""
    from pycocoevalcap.tokenizer.ptbtokenizer import PUNCTUATIONS

    tokenized = []
    for sentence in sentences:
        tokens = _FALLBACK_TOKEN.findall(sentence.lower())
        tokenized.append(" ".join(t for t in tokens if t not in PUNCTUATIONS))
    return tokenized


# -- scoring ------------------------------------------------------------------------------------


class MeteorScorer:
    """One METEOR 1.5 process (pycocoevalcap's wrapper) shared by every dataset of a run."""

    def __init__(self) -> None:
        require_java()
        from pycocoevalcap.meteor.meteor import Meteor

        try:
            self._meteor = Meteor()
        except OSError as error:
            raise CaptionEvalError(f"could not start METEOR ({error}); {JAVA_HINT}") from None

    def score(self, gts: Mapping[str, list[str]], res: Mapping[str, list[str]]) -> float:
        try:
            value, _ = self._meteor.compute_score(dict(gts), dict(res))
        except (OSError, ValueError) as error:
            # METEOR died (e.g. out of memory): its stdout ends and float('') fails
            raise CaptionEvalError(f"METEOR failed ({error}) {self._stderr_tail()}".strip()) from None
        return float(value)

    def _stderr_tail(self) -> str:
        process = self._meteor.meteor_p
        if process.poll() is None:  # still running: reading stderr would block
            return ""
        return process.stderr.read()[-2000:].decode(errors="replace")

    def close(self) -> None:
        process = self._meteor.meteor_p
        if process.poll() is None:
            process.stdin.close()
            process.kill()
            process.wait()


@contextlib.contextmanager
def meteor_session(enabled: bool) -> Iterator[MeteorScorer | None]:
    """A METEOR scorer for the run (None when disabled), always shut down at the end."""
    scorer = MeteorScorer() if enabled else None
    try:
        yield scorer
    finally:
        if scorer is not None:
            scorer.close()


def _sanitize_for_meteor(text: str) -> str:
    # '|||' separates fields in METEOR's stdin protocol; a caption containing it would shift them
    return text.replace("|||", " ").strip()


def score_tokenized(
    gts: Mapping[str, list[str]],
    res: Mapping[str, list[str]],
    meteor: MeteorScorer | None,
) -> dict[str, float | None]:
    """BLEU-1..4, METEOR, ROUGE-L, CIDEr of already tokenized captions (METEOR None without a scorer).

    ``gts`` maps an id to its reference captions, ``res`` the same ids to a one-element list.
    """
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    if set(gts) != set(res) or not gts:
        raise ValueError("references and predictions must cover the same, non-empty set of ids")
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        # BleuScorer prints its ratio statistics to stdout
        bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    scores: dict[str, float | None] = {f"BLEU-{n + 1}": float(bleu[n]) for n in range(4)}
    scores["METEOR"] = None
    if meteor is not None:
        scores["METEOR"] = meteor.score(
            {k: [_sanitize_for_meteor(r) for r in v] for k, v in gts.items()},
            {k: [_sanitize_for_meteor(v[0])] for k, v in res.items()},
        )
    scores["ROUGE-L"] = float(Rouge().compute_score(gts, res)[0])
    scores["CIDEr"] = float(Cider().compute_score(gts, res)[0])
    return scores


@dataclass(frozen=True)
class CaptionSet:
    """One dataset's captions to score: id → references, id → the generated caption."""

    references: dict[str, list[str]]
    predictions: dict[str, str]


def _tokenize_all(sets: Sequence[CaptionSet], use_java: bool) -> list[tuple[dict, dict]]:
    """Tokenize every caption of every set in one pass (one Java start for the whole run)."""
    flat: list[str] = []
    for caption_set in sets:
        for key, refs in caption_set.references.items():
            flat.extend(refs)
            flat.append(caption_set.predictions[key])
    tokens = iter(ptb_tokenize(flat) if use_java else fallback_tokenize(flat))
    tokenized = []
    for caption_set in sets:
        gts, res = {}, {}
        for key, refs in caption_set.references.items():
            gts[key] = [next(tokens) for _ in refs]
            res[key] = [next(tokens)]
        tokenized.append((gts, res))
    return tokenized


def score_caption_sets(sets: Sequence[CaptionSet], use_java: bool = True) -> list[CaptionScores]:
    """Score several datasets; the Java tools start once for all of them."""
    if not sets:
        return []
    if use_java:
        require_java()
    tokenized = _tokenize_all(sets, use_java)
    results = []
    with meteor_session(use_java) as meteor:
        for gts, res in tokenized:
            scores = score_tokenized(gts, res, meteor)
            results.append(
                CaptionScores(
                    metrics={k: v for k, v in scores.items() if v is not None},
                    count=len(gts),
                    tokenizer="ptb" if use_java else "python-fallback",
                    unavailable=[k for k, v in scores.items() if v is None],
                )
            )
    return results
