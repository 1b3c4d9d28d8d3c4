"""Recipes: what a build compiles, declared in YAML and validated by pydantic.

A recipe names the sources (raw sub-folder override), the task builders run on each source and
their options, the instruction template pools, box style, seed, shard size, optional caps and
sampling ratios, and the sample counts the recipe is expected to produce. Every model forbids
unknown keys, so a typo fails the load; errors name the key *and* its line in the YAML file
(taken from the YAML node marks, since pydantic only knows the key path).

Example::

    name: demo
    seed: 0
    sources:
      rsicd:
        builders: [caption]
        expected: {caption: 40}
      dior_rsvg:
        builders: {refer: {}, identify: {}}
      capera:
        builders: {caption: {frames: 4}}
      ucm_captions: {builders: [caption]}
      rsivqa:
        builders: [vqa]
        subsets: [UCM, Sydney, DOTA]       # other subsets' train records: counted as not selected
    mixes:                                 # multi-source builders (skyeye_data/compile/mixes/)
      ucm_conversa:
        builder: conversa
        sources: [ucm_captions, rsivqa]    # the first gives the image, the others join on it
        options: {turns: [caption, vqa], min_turns: 2, max_turns: 4}

``leak_guard`` says which val/test images a train record may not share (by image key or content
hash): ``within_source`` (none: each source keeps its own published split, the paper's
construction), ``benchmarks`` (no image of an evaluated benchmark's val/test split in another
source's training), ``all`` (the default: no image of any val/test split anywhere in training);
``true``/``false`` are the older spellings of ``all``/``within_source``. Whatever the scope, the
build reports the training images that also appear in an eval split. ``dedupe`` (off by default)
leaves out samples repeating an earlier one, counted too.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from skyeye_data.compile.builders import MIX_BUILDERS, RECORD_BUILDERS
from skyeye_data.compile.mixes import load_mix_builders
from skyeye_data.compile.options import BuilderOptions, MixOptions
from skyeye_data.compile.templates import DEFAULT_POOLS, template_problems
from skyeye_data.limits import InputLimits
from skyeye_data.review.policy import ReviewPolicy
from skyeye_data.safeyaml import YamlLimitError, load_limited
from skyeye_data.sources import all_sources

BoxStyleName = Literal["brace", "angle"]
LeakGuardScope = Literal["within_source", "benchmarks", "all"]
LEAK_GUARD_ALIASES = {True: "all", False: "within_source"}


class RecipeError(Exception):
    """A recipe that cannot be used; the message names the file, line and key of each problem."""


class SourceSpec(BaseModel):
    """How one source enters the build."""

    model_config = ConfigDict(extra="forbid")

    raw: str | None = Field(None, description="folder under --raw-root holding the dataset (default: the source name)")
    subsets: list[str] | None = Field(
        None, description="only train records of these subsets (e.g. RSIVQA [UCM, Sydney, DOTA]); others are counted as not selected"
    )
    builders: dict[str, BuilderOptions] = Field(
        default_factory=dict, description="task builders to run on the source's train records, with options"
    )
    eval: bool | None = Field(None, description="write val/test records as eval shards (default: benchmark sources only)")
    max_samples: int | None = Field(
        None, ge=0, description="cap: at most this many training samples, from the first train records in the source's order"
    )
    ratio: float = Field(
        1.0, gt=0, le=1, description="keep this fraction of train records, chosen by a seeded hash of the record id"
    )
    max_side: int | None = Field(None, ge=16, description="downscale stored images whose longer side exceeds this")
    expected: dict[str, int] | None = Field(None, description="expected training samples per task, checked by `skyeye stats`")
    # left out of the dump (and the fingerprint) while absent, so recipes without it keep their print
    version: str | None = Field(
        None, exclude_if=lambda v: v is None,
        description='dataset version to read when the raw folder holds several (DOTA: "1.0" or "1.5"; never mixed)',
    )  # fmt: skip

    @field_validator("version", mode="before")
    @classmethod
    def _version_as_text(cls, value: Any) -> Any:
        # unquoted YAML `version: 1.5` arrives as a float; the converters name versions as text
        return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value

    def converter_options(self) -> dict[str, Any]:
        """The options handed to the source's converter (``SourceConverter.configured``)."""
        return {"version": self.version} if self.version is not None else {}

    @field_validator("builders", mode="before")
    @classmethod
    def _names_list_to_mapping(cls, value: Any) -> Any:
        # `builders: [caption, vqa]` is shorthand for `builders: {caption: {}, vqa: {}}`
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return {name: {} for name in value}
        return {k: ({} if v is None else v) for k, v in value.items()} if isinstance(value, dict) else value


class MixSpec(BaseModel):
    """A multi-source builder (e.g. a Conversa set) reading the records of several sources."""

    model_config = ConfigDict(extra="forbid")

    builder: str
    sources: list[str] = Field(min_length=1, description="the first source gives the image; the others are joined on it")
    options: MixOptions = Field(default_factory=MixOptions)
    max_samples: int | None = Field(None, ge=0)
    expected: dict[str, int] | None = None


class Recipe(BaseModel):
    """A build recipe. `skyeye recipe schema` prints this model's JSON Schema."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    seed: int = Field(0, description="seeds instruction choice and sampling; same seed, same build")
    box_style: BoxStyleName = Field("brace", description="brace: {<x1><y1><x2><y2>}; angle: <<x1><y1><x2><y2>>")
    shard_size: int = Field(10_000, ge=1, description="samples per Parquet shard")
    row_group_size: int = Field(1_000, ge=1, description="rows per Parquet row group (random access granularity)")
    max_side: int | None = Field(None, ge=16, description="downscale stored images whose longer side exceeds this")
    # left out of the dump (and the fingerprint) while absent, so recipes without it keep their print
    train_size: int | None = Field(
        None, ge=16, exclude_if=lambda v: v is None,
        description="also write train-images/: every image pre-resized to the model's square input (e.g. 448), for training",
    )  # fmt: skip
    leak_guard: LeakGuardScope = Field(
        "all",
        description="which val/test images train records may not share: within_source (each source keeps its published "
        "split: the paper's construction), benchmarks (also no image of an evaluated benchmark's val/test split in "
        "another source's training), all (no image of any val/test split anywhere in training); true = all, false = within_source",
    )
    dedupe: bool = Field(
        False, description="leave out (and count) a sample whose image, task, payload and answers repeat an earlier sample's"
    )
    templates: dict[str, list[str]] = Field(
        default_factory=dict, description="instruction pools overriding the built-in ones, by pool name"
    )
    sources: dict[str, SourceSpec] = Field(min_length=1)
    mixes: dict[str, MixSpec] = Field(default_factory=dict, description="multi-source builders, by output name")
    review: ReviewPolicy | None = Field(
        None, description="human review (`skyeye review`): routing policy and ledger; absent: no review gate"
    )
    # left out of the dump (and the fingerprint) while absent, so recipes without it keep their print
    input: InputLimits | None = Field(None, exclude_if=lambda v: v is None, description="limits on raw input (skyeye_data.limits)")

    @field_validator("leak_guard", mode="before")
    @classmethod
    def _leak_guard_aliases(cls, value: Any) -> Any:
        # the older boolean form: true was "no val/test image of any source in training", false "no guard"
        return LEAK_GUARD_ALIASES.get(value, value) if isinstance(value, bool) else value

    @field_validator("sources", mode="before")
    @classmethod
    def _empty_source_specs(cls, value: Any) -> Any:
        # `rsicd:` with nothing under it means "use the defaults"
        return {k: ({} if v is None else v) for k, v in value.items()} if isinstance(value, dict) else value

    def fingerprint(self) -> str:
        """sha256 of the normalised recipe (defaults filled in, keys sorted): same recipe, same print."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def raw_folder(self, source: str) -> str:
        return self.sources[source].raw or source


# ---------------------------------------------------------------------------------------------
# loading with line numbers
# ---------------------------------------------------------------------------------------------


def node_at(root: yaml.Node, loc: tuple[Any, ...]) -> yaml.Node:
    """The deepest YAML node along a pydantic error location (key names and list indices)."""
    node = root
    for depth, part in enumerate(loc):
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == str(part)), None)
            if match is None:
                return node
            key_node, value_node = match
            # the last part names the key at fault (a typo, a bad value): point at the key's line
            node = key_node if depth == len(loc) - 1 else value_node
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            return node
    return node


def duplicate_keys(node: yaml.Node, prefix: str = "") -> list[tuple[str, int]]:
    """(dotted key, line) of every key that repeats one before it in the same mapping."""
    found: list[tuple[str, int]] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            dotted = f"{prefix}{key_node.value}"
            if key_node.value in seen:
                found.append((dotted, key_node.start_mark.line + 1))
            seen.add(key_node.value)
            found += duplicate_keys(value_node, dotted + ".")
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            found += duplicate_keys(item, f"{prefix}{i}.")
    return found


def _describe(path: str, root: yaml.Node | None, loc: tuple[Any, ...], message: str) -> str:
    where = ".".join(str(p) for p in loc) or "(top level)"
    line = f":{node_at(root, loc).start_mark.line + 1}" if root is not None else ""
    return f"{path}{line}: {where}: {message}"


def _pydantic_messages(error: ValidationError, path: str, root: yaml.Node | None) -> list[str]:
    messages = []
    for err in error.errors():
        loc = tuple(err["loc"])
        msg = "unknown key (a typo?)" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
        messages.append(_describe(path, root, loc, msg))
    return messages


def parse_recipe(text: str, path: str = "<recipe>") -> Recipe:
    """Validate recipe YAML text; RecipeError lists every problem with its line."""
    try:
        root, data = load_limited(text)  # size and alias-expansion caps: duplicate_keys walks the expanded tree
    except YamlLimitError as error:
        raise RecipeError(f"{path}: refused: {error}") from error
    except yaml.YAMLError as error:
        raise RecipeError(f"{path}: not valid YAML: {error}") from error
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: a recipe is a YAML mapping (name:, sources:, ...), got {type(data).__name__}")
    duplicates = duplicate_keys(root)
    if duplicates:
        # YAML keeps the last of two equal keys without a word; in a recipe that hides a mistake
        raise RecipeError("invalid recipe:\n  " + "\n  ".join(f"{path}:{line}: {key}: key given twice" for key, line in duplicates))
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as error:
        raise RecipeError("invalid recipe:\n  " + "\n  ".join(_pydantic_messages(error, path, root))) from error
    problems = [_describe(path, root, loc, msg) for loc, msg in semantic_problems(recipe)]
    if problems:
        raise RecipeError("invalid recipe:\n  " + "\n  ".join(problems))
    return recipe


def load_recipe(path: Path) -> Recipe:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise RecipeError(f"cannot read recipe {path}: {error.strerror}") from error
    return parse_recipe(text, str(path))


def semantic_problems(recipe: Recipe) -> list[tuple[tuple[Any, ...], str]]:
    """Checks beyond the types: known sources and builders, builders fit the source's task, pools well formed."""
    load_mix_builders()
    known_sources = all_sources()
    problems: list[tuple[tuple[Any, ...], str]] = []
    for name, spec in recipe.sources.items():
        if name not in known_sources:
            problems.append((("sources", name), f"unknown source {name!r}; known: {', '.join(known_sources)}"))
            continue
        task = known_sources[name].task
        try:
            known_sources[name].configured(**spec.converter_options())
        except ValueError as error:
            problems.append((("sources", name, "version"), str(error)))
        for builder_name, options in spec.builders.items():
            loc = ("sources", name, "builders", builder_name)
            builder = RECORD_BUILDERS.get(builder_name)
            if builder is None:
                problems.append((loc, f"unknown builder {builder_name!r}; known: {', '.join(RECORD_BUILDERS)}"))
            elif task not in builder.record_tasks:
                problems.append((loc, f"builder {builder_name!r} reads {'/'.join(builder.record_tasks)} records; {name} has {task} records"))
            if options.pool is not None and options.pool not in _pool_names(recipe):
                problems.append((loc + ("pool",), f"unknown template pool {options.pool!r}"))
    for mix_name, mix in recipe.mixes.items():
        if mix.builder not in MIX_BUILDERS:
            known = ", ".join(MIX_BUILDERS) or "none registered yet"
            problems.append((("mixes", mix_name, "builder"), f"unknown multi-source builder {mix.builder!r}; known: {known}"))
        for i, source in enumerate(mix.sources):
            if source not in recipe.sources:
                problems.append((("mixes", mix_name, "sources", i), f"{source!r} is not among the recipe's sources"))
        if mix.builder == "conversa" and not mix.options.turns:
            problems.append((("mixes", mix_name, "options"), "a conversa mix needs options.turns, e.g. [caption, vqa]"))
        if mix.options.min_turns > mix.options.max_turns:
            problems.append((("mixes", mix_name, "options", "min_turns"), "min_turns is larger than max_turns"))
    for pool, templates in recipe.templates.items():
        for i, problem in template_problems(pool, templates):
            problems.append((("templates", pool) + ((i,) if i is not None else ()), problem))
    return problems


def _pool_names(recipe: Recipe) -> set[str]:
    return set(DEFAULT_POOLS) | set(recipe.templates)


def recipe_json_schema() -> dict:
    return Recipe.model_json_schema()
