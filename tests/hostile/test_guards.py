"""The guards themselves, called directly (fast): rawfs, safejson, imagecheck, textguard, safeyaml, the lock."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import zlib

import av
import pytest
import yaml
from PIL import Image

from skyeye_data import imagecheck, rawfs, safejson, safeyaml, textguard
from skyeye_data.io import OutputLocked, is_stale_temporary, output_lock, temporary_name
from skyeye_data.limits import InputLimits

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def root(tmp_path):
    raw = tmp_path / "raw"
    (raw / "src").mkdir(parents=True)
    (raw / "src" / "a.txt").write_text("hello\n")
    (tmp_path / "outside.txt").write_text("secret\n")
    return raw


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("a\x00b.jpg", "holds a NUL character"),
        ("/etc/passwd", "is an absolute path"),
        ("C:\\x.jpg", "is an absolute path"),
        ("../x.jpg", "climbs out of its folder"),
        ("a/../../x.jpg", "climbs out of its folder"),
        ("x" * 256 + ".jpg", "file names hold at most 255"),
        ("\u00e9" * 128 + ".jpg", "file names hold at most 255"),  # 256 bytes in UTF-8, 132 characters
        ("", "not a non-empty string"),
        (None, "not a non-empty string"),
    ],
)
def test_check_name_refuses_before_any_filesystem_call(name, reason):
    with pytest.raises(rawfs.RawAccessError, match=reason):
        rawfs.check_name(name)


def test_check_name_accepts_ordinary_names():
    assert rawfs.check_name("Baseball_001 .mp4") == "Baseball_001 .mp4"
    assert rawfs.check_name("sub/P0000__1__0___0.png") == "sub/P0000__1__0___0.png"


def test_fifo_is_refused_without_blocking(root):
    fifo = root / "src" / "label.txt"
    os.mkfifo(fifo)
    with rawfs.scope(root), pytest.raises(rawfs.RawAccessError, match=r"src/label.txt is a FIFO"):
        rawfs.read_bytes(fifo, "label")


def test_symlink_out_of_the_root_is_refused_unless_allowed(root, tmp_path):
    link = root / "src" / "b.txt"
    link.symlink_to(tmp_path / "outside.txt")
    with rawfs.scope(root), pytest.raises(rawfs.RawAccessError, match="outside the raw root") as refused:
        rawfs.read_text(link, "label")
    assert str(tmp_path) not in refused.value.reason
    with rawfs.scope(root, InputLimits(allow_outside=[tmp_path])):
        assert rawfs.read_text(link, "label") == "secret\n"


def test_symlinked_folder_out_of_the_root_is_refused(root, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "c.txt").write_text("x")
    (root / "src" / "linked").symlink_to(tmp_path / "elsewhere")
    with rawfs.scope(root), pytest.raises(rawfs.RawAccessError, match="outside the raw root"):
        rawfs.read_bytes(root / "src" / "linked" / "c.txt", "label")


def test_device_is_refused_even_when_its_folder_is_allowed(root):
    link = root / "src" / "zero.txt"
    link.symlink_to("/dev/zero")
    with rawfs.scope(root, InputLimits(allow_outside=["/dev"])), pytest.raises(rawfs.RawAccessError, match="is a device"):
        rawfs.read_bytes(link, "label")


def test_size_cap_per_kind(root):
    with rawfs.scope(root, InputLimits(size_caps={"label": 3})), pytest.raises(rawfs.RawAccessError, match="over the 3-byte cap"):
        rawfs.read_bytes(root / "src" / "a.txt", "label")


def test_within_scopes_a_generator_only_while_it_runs(root):
    def reader():
        yield rawfs.current_scope().root
        yield rawfs.current_scope().root

    items = rawfs.within(root, reader())
    assert next(items) == root.resolve()
    assert rawfs.current_scope() is None  # nothing leaks into the caller between items
    assert next(items) == root.resolve()


def test_strip_paths_keeps_relative_paths():
    text = "cannot identify image file '/home/me/raw/ucm/images/1.tif' (looked for images/1.tif)"
    assert rawfs.strip_paths(text) == "cannot identify image file '1.tif' (looked for images/1.tif)"


def test_json_nesting_is_a_decode_error_with_a_position():
    with pytest.raises(json.JSONDecodeError, match="nested more than 500 levels") as error:
        safejson.loads('{"a": ' + "[" * 1500 + "]" * 1500 + "}")
    assert isinstance(error.value, safejson.JsonTooDeep) and error.value.pos == 6 + 499
    assert safejson.loads(' [1, {"a": "[[[["}] ') == [1, {"a": "[[[["}]
    with pytest.raises(json.JSONDecodeError, match="Extra data"):
        safejson.loads("[1] [2]")


def _png(width, height, rows):
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    data = zlib.compress(b"".join(b"\x00" + b"\x11" * (width * 3) for _ in range(rows)))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def _jpeg(size=(300, 200)):
    buffer = io.BytesIO()
    Image.effect_noise(size, 40).convert("RGB").save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def test_png_with_fewer_rows_than_declared_is_refused_though_pillow_loads_it():
    data = _png(200, 200, rows=10)
    with Image.open(io.BytesIO(data)) as image:
        image.load()  # Pillow alone accepts it: why the stream check exists
    with pytest.raises(imagecheck.ImageProblem, match="PNG image data is truncated: 6,010 of the 120,200 bytes"):
        imagecheck.verified_image(data)
    assert imagecheck.verified_image(_png(200, 200, rows=200)) == _png(200, 200, rows=200)


def test_png_crc_damage_is_found_by_the_stream_check():
    data = bytearray(_png(50, 50, rows=50))
    data[40] ^= 0xFF  # inside the IDAT body
    with pytest.raises(imagecheck.ImageProblem, match="CRC mismatch"):
        imagecheck.png_stream_check(bytes(data))


def test_large_images_take_the_memory_bounded_path():
    jpeg, png = _jpeg((400, 300)), _png(400, 300, rows=300)
    with rawfs.scope(None, InputLimits(decode_budget_pixels=10_000)):
        assert imagecheck.verified_image(jpeg) == jpeg  # decoded at a reduced DCT scale
        small = imagecheck.verified_image(jpeg, max_side=64)
        with Image.open(io.BytesIO(small)) as image:
            assert max(image.size) == 64
        assert imagecheck.verified_image(png) == png  # streamed, never decoded whole
        with Image.open(io.BytesIO(imagecheck.verified_image(png, max_side=64))) as image:
            assert image.size == (64, 48)  # no reduced PNG decode: decoded whole, within the pixel cap
        with pytest.raises(imagecheck.ImageProblem, match="PNG image data is truncated"):
            imagecheck.verified_image(_png(400, 300, rows=30), max_side=64)
        with pytest.raises(imagecheck.ImageProblem, match="truncated"):
            imagecheck.verified_image(jpeg[: len(jpeg) // 2])


def test_pixel_cap_is_checked_from_the_header():
    with rawfs.scope(None, InputLimits(max_image_pixels=1000)), pytest.raises(imagecheck.ImageProblem, match="over the cap of 1,000"):
        imagecheck.read_header(io.BytesIO(_jpeg((40, 30))))


def test_still_image_is_not_a_video(tmp_path):
    path = tmp_path / "clip.mp4"
    path.write_bytes(_jpeg())
    with av.open(str(path)) as container:
        assert "still image" in imagecheck.still_image_problem(container)


def _fields(**text):
    return {"source": "x", "record_id": "x:1", "image_path": "images/1.jpg", "image_key": "x:1", "flags": ["a"], **text}


def test_text_is_stripped_and_flagged_by_default():
    cleaned = textguard.clean_fields(_fields(captions=["a\ud800b", "c\x1b[31md\u202ee\x00"], question="ok?"))
    assert cleaned["captions"] == ["ab", "cde"]
    assert cleaned["flags"] == ["a", "text_control_stripped", "text_surrogate_stripped"]


def test_text_is_quarantined_when_the_recipe_says_so():
    with rawfs.scope(None, InputLimits(text_controls="quarantine")):
        with pytest.raises(textguard.TextProblem, match="caption 1 holds the control/bidi character U\\+202E"):
            textguard.clean_fields(_fields(captions=["fine", "x\u202e"]))
        with pytest.raises(textguard.TextProblem, match="expression holds a lone surrogate U\\+DC80"):
            textguard.clean_fields(_fields(expression="x\udc80"))


def test_text_length_cap_and_identity_fields():
    with pytest.raises(textguard.TextProblem, match="answer is 5,000 characters long, over the cap of 4,096"):
        textguard.clean_fields(_fields(answer="y" * 5000))
    with pytest.raises(textguard.TextProblem, match="image_path .* holds U\\+0000"):
        textguard.clean_fields(_fields() | {"image_path": "images/1\x00.jpg"})


def test_escaped_low_surrogates_cannot_pass_for_bad_bytes():
    text = textguard.escaped_surrogates_apart(r'["\udc80", "\ud800\udc80", "\\udc80"]')
    assert json.loads(text) == ["\udc7f", "\U00010080", "\\udc80"]


def test_yaml_alias_bomb_and_recursive_alias_are_refused_quickly():
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{n}: &{n} [{', '.join(['*' + p] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi")
    )
    with pytest.raises(safeyaml.YamlLimitError, match="alias bomb"):
        safeyaml.compose_limited(bomb)
    with pytest.raises((safeyaml.YamlLimitError, yaml.YAMLError)):
        safeyaml.compose_limited("a: &a [*a]\n")
    with pytest.raises(safeyaml.YamlLimitError, match="bytes; a recipe is at most"):
        safeyaml.compose_limited("x: " + "y" * (2 << 20))
    root, data = safeyaml.load_limited("a: &a {k: 1}\nb: *a\n")
    assert data == {"a": {"k": 1}, "b": {"k": 1}} and root is not None


HOLD = "import sys, time\nfrom pathlib import Path\nfrom skyeye_data.io import output_lock\nwith output_lock(Path(sys.argv[1])):\n    print('held', flush=True)\n    time.sleep(60)\n"


def test_output_lock_names_the_holder_and_frees_on_death(tmp_path):
    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(OutputLocked, match=f"is being built by PID {holder.pid}"):
            with output_lock(out):
                pass
        stale_of_live = out / f".x.parquet.{holder.pid}.tmp"
        assert not is_stale_temporary(stale_of_live)
    finally:
        holder.kill()  # SIGKILL: the kernel drops the flock
        holder.wait()
    assert is_stale_temporary(out / f".x.parquet.{holder.pid}.tmp")
    assert not is_stale_temporary(temporary_name(out / "mine.parquet"))  # never this process's own
    with output_lock(out):
        assert (out / ".skyeye-build.lock").read_text().strip() == str(os.getpid())
    assert not (out / ".skyeye-build.lock").exists()


def test_output_lock_removes_a_folder_it_created_and_left_empty(tmp_path):
    with output_lock(tmp_path / "new"):
        pass
    assert not (tmp_path / "new").exists()
