"""Options of the task builders, as a recipe gives them (``sources.<name>.builders.<builder>``, ``mixes.<name>.options``).

Their own module so that the builders (which read them) and the recipe (which validates them) both
import them from below, and neither imports the other's layer backwards.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class BuilderOptions(BaseModel):
    """Options of one builder on one source. Builders read the options they understand."""

    model_config = ConfigDict(extra="forbid")

    frames: int = Field(4, ge=1, le=64, description="video: frames sampled uniformly from each video")
    pool: str | None = Field(None, description="name of the template pool to draw instructions from (default: the builder's)")
    skip_difficult: bool = Field(False, description="detection: leave out objects marked difficult")
    max_per_record: int | None = Field(None, ge=1, description="at most this many samples from one record")


class MixOptions(BuilderOptions):
    """Options of a multi-source builder (Conversa, RSPG, ERA-VQA); each builder reads the ones it understands."""

    max_boxes: int = Field(10, ge=1, description="phrase grounding: a class with more boxes than this in an image is not phrased")
    min_box_side: float = Field(0, ge=0, description="phrase grounding: a class with a box whose shorter side is below this (pixels) is not phrased")
    max_phrases: int = Field(1, ge=1, le=8, description="phrase grounding: up to this many classes in one answer (<p>a</p> {..} <p>b</p> {..})")
    samples_per_image: int = Field(1, ge=1, description="samples drawn from one image (RSPG) or one video (ERA-VQA)")
    turns: list[Literal["caption", "vqa", "refer", "identify", "detection"]] = Field(
        default_factory=list, description="Conversa: the task kinds a dialog may hold, in the recipe's order"
    )
    min_turns: int = Field(2, ge=1, description="Conversa: fewest turns in a dialog")
    max_turns: int = Field(4, ge=1, description="Conversa: most turns in a dialog (the count is drawn from the seed)")
    min_tasks: int = Field(2, ge=1, description="Conversa: fewest distinct tasks in a dialog")
    shuffle_turns: bool = Field(True, description="Conversa: order turns by the seed (false: the order of `turns`)")
    join_split: Literal["train", "any"] = Field(
        "train", description="Conversa: which records of the joined sources join a train image of the first source: "
        "train (their own source's train split only), or any (any split, under leak_guard within_source only: the "
        "dialog takes the first source's split; the benchmarks and all scopes keep joined val/test records out)",
    )  # fmt: skip
