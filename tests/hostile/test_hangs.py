"""Nothing makes a build wait forever (issue 18, 'Hangs' 9-10, and YAML tags, which held)."""

from __future__ import annotations

import os

import pytest

pytestmark = pytest.mark.timeout(600)


def test_fifo_in_place_of_a_label_file_does_not_block(case):
    label = case.find("dota", "P0001.txt")
    label.unlink()
    os.mkfifo(label)  # nobody ever writes to it: an open() without O_NONBLOCK would wait forever
    outcome = case.build()
    outcome.expect_quarantined("dota", "P0001.txt", "is a FIFO (named pipe), not a regular file")


def test_fifo_in_place_of_an_image_does_not_block(case):
    image = case.find("dior", "00002.jpg")
    image.unlink()
    os.mkfifo(image)
    outcome = case.build()
    outcome.expect_quarantined("dior", "00002.xml", "is a FIFO (named pipe), not a regular file")


def _alias_bomb() -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, 9):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def test_yaml_alias_bomb_recipe_is_refused_at_once(case):
    recipe = case.base / "bomb.yaml"
    recipe.write_text(_alias_bomb() + "name: bomb\nsources: {rsicd: {}}\n")
    assert len(recipe.read_bytes()) < 1500
    checked = case.run("recipe", "check", str(recipe), timeout=60)
    assert checked.returncode == 2, checked.stdout + checked.stderr
    assert "alias bomb" in checked.stdout + checked.stderr
    outcome = case.build(recipe=recipe)
    assert outcome.rc == 2 and "alias bomb" in outcome.output
    assert not case.out.exists()


def test_yaml_python_tag_is_refused_and_never_run(case):
    """Held before: the safe loader constructs no Python objects."""
    marker = case.base / "pwned"
    recipe = case.recipe(f"x: !!python/object/apply:os.system ['touch {marker}']\n")
    outcome = case.build(recipe=recipe)
    assert outcome.rc == 2 and "not valid YAML" in outcome.output
    assert not marker.exists()
