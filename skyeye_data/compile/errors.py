"""The error of a build that cannot go on."""

from __future__ import annotations


class BuildError(Exception):
    """The build cannot go on (a required source is absent, a raw folder has the wrong layout, --strict)."""
