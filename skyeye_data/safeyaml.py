"""Recipe YAML loaded within limits: size, and what aliases expand to.

``yaml.safe_load`` builds no arbitrary objects (no ``!!python`` tags), but YAML aliases let a
1.2 KB file describe a tree of billions of nodes ("billion laughs": ``b: [*a, *a, ...]`` nine levels
deep). PyYAML shares the aliased objects, so loading is fast; every walk over the result — the
duplicate-key check, validation, the recipe fingerprint — then visits each shared node once per
path and spins for hours. A recipe is a few KB of hand-written text with at most a few aliases, so:
the text is capped at :data:`MAX_BYTES`, and the node tree, counted *with* aliases expanded (in
linear time, each distinct node once), at :data:`MAX_EXPANDED_NODES`.
"""

from __future__ import annotations

from typing import Any

import yaml

MAX_BYTES = 1 << 20
MAX_EXPANDED_NODES = 100_000


class YamlLimitError(ValueError):
    """The YAML text is over a limit; the message says which and by how much."""


def expanded_size(root: yaml.Node) -> int:
    """Nodes in the tree with every alias expanded, counted without expanding (memoised on node identity).

    Stops counting at the cap, so a bomb is measured in microseconds.
    """
    sizes: dict[int, int] = {}
    on_path: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in on_path:  # a recursive alias (&a [*a]): infinite when expanded
            return MAX_EXPANDED_NODES + 1
        on_path.add(key)
        total = 1
        if isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        else:
            children = []
        for child in children:
            total += size(child)
            if total > MAX_EXPANDED_NODES:
                break
        on_path.discard(key)
        sizes[key] = total
        return total

    return size(root)


def compose_limited(text: str) -> yaml.Node | None:
    """``yaml.compose`` (safe loader) after the size check, and the expansion check on its tree."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_BYTES:
        raise YamlLimitError(f"the file is {size:,} bytes; a recipe is at most {MAX_BYTES:,}")
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        nodes = expanded_size(root) if root is not None else 0
    except RecursionError:
        raise YamlLimitError("it is nested deeper than a YAML parser can follow") from None
    if root is not None:
        if nodes > MAX_EXPANDED_NODES:
            raise YamlLimitError(
                f"its aliases (*name) expand to more than {MAX_EXPANDED_NODES:,} nodes (an alias bomb?); "
                "write the values out or use fewer aliases"
            )
    return root


def load_limited(text: str) -> tuple[yaml.Node | None, Any]:
    """(the composed node tree, the loaded data), both within the limits above."""
    root = compose_limited(text)
    return root, yaml.safe_load(text)
