"""Frame sampling, the frame cache, and how broken videos fail (skyeye_data.video)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from skyeye_data import video
from skyeye_data.video import (
    FrameCache,
    VideoError,
    frame_indices,
    frames_as_jpeg,
    probe_video,
    sample_frames,
    write_video,
)

# one distinct colour per stretch of frames, so a sampled frame tells where in time it came from
COLOURS = [(230, 20, 20), (20, 230, 20), (20, 20, 230), (230, 230, 20), (20, 230, 230), (230, 20, 230)]


def colour_video(path: Path, frames_per_colour: int = 4, side: int = 48, container_format: str = "mp4") -> Path:
    frames = [Image.new("RGB", (side, side), c) for c in COLOURS for _ in range(frames_per_colour)]
    return write_video(path, frames, container_format=container_format)


def nearest_colour(image: Image.Image) -> int:
    pixel = image.getpixel((image.width // 2, image.height // 2))
    return min(range(len(COLOURS)), key=lambda i: sum((a - b) ** 2 for a, b in zip(COLOURS[i], pixel)))


@pytest.fixture(scope="module")
def colours_mp4(tmp_path_factory) -> Path:
    return colour_video(tmp_path_factory.mktemp("video") / "colours.mp4")


def test_frame_indices_are_the_middles_of_equal_slices():
    assert frame_indices(120, 4) == [15, 45, 75, 105]
    assert frame_indices(24, 6) == [2, 6, 10, 14, 18, 22]
    assert frame_indices(2, 4) == [0, 0, 1, 1]  # more frames asked than exist: repeats, in order
    with pytest.raises(VideoError):
        frame_indices(0, 4)


def test_probe_reads_size_frames_and_hash(colours_mp4):
    info = probe_video(colours_mp4)
    assert (info.width, info.height, info.frames, info.declared_frames) == (48, 48, 24, 24)
    assert info.duration_s == pytest.approx(1.0, abs=0.05)
    assert len(info.sha256) == 64


def test_sampled_frames_come_in_time_order(colours_mp4):
    frames = sample_frames(colours_mp4, n=6)
    assert [nearest_colour(f) for f in frames] == [0, 1, 2, 3, 4, 5]
    assert [nearest_colour(f) for f in sample_frames(colours_mp4, n=3)] == [1, 3, 5]  # frames 4, 12, 20
    assert all(f.size == (48, 48) and f.mode == "RGB" for f in frames)


def test_max_side_downscales_keeping_the_aspect(tmp_path):
    frames = [Image.new("RGB", (64, 32), (200, 10, 10)) for _ in range(6)]
    path = write_video(tmp_path / "wide.mp4", frames)
    assert [f.size for f in sample_frames(path, n=2, max_side=16)] == [(16, 8), (16, 8)]


def test_stream_without_frame_count_is_counted_by_demuxing(tmp_path):
    path = colour_video(tmp_path / "colours.mkv", container_format="matroska")
    assert probe_video(path).declared_frames == 0  # Matroska headers hold no frame count
    assert [nearest_colour(f) for f in sample_frames(path, n=6)] == [0, 1, 2, 3, 4, 5]


def test_write_video_is_reproducible(tmp_path):
    a = colour_video(tmp_path / "a.mp4", frames_per_colour=1)
    b = colour_video(tmp_path / "b.mp4", frames_per_colour=1)
    assert a.read_bytes() == b.read_bytes()


@pytest.mark.parametrize(
    "damage, expected",
    [
        (lambda data: data[: len(data) // 2], "video cannot be opened"),  # moov atom at the end: lost
        (lambda data: b"", "video cannot be opened"),
        (lambda data: b"not a video at all\n" * 20, "video cannot be opened"),
    ],
    ids=["cut-in-half", "empty", "text"],
)
def test_broken_video_raises_a_clear_video_error(colours_mp4, tmp_path, damage, expected):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(damage(colours_mp4.read_bytes()))
    with pytest.raises(VideoError, match=expected) as raised:
        probe_video(broken)
    assert str(tmp_path) not in str(raised.value)  # reasons name no local paths
    with pytest.raises(VideoError):
        sample_frames(broken, 4)


def test_missing_video_raises_video_error(tmp_path):
    with pytest.raises(VideoError, match="not found"):
        probe_video(tmp_path / "nope.mp4")
    with pytest.raises(VideoError, match="not found"):
        frames_as_jpeg(tmp_path / "nope.mp4", 4, tmp_path / "cache")


def test_truncated_video_with_header_first_is_caught(tmp_path):
    """With the index at the front (faststart), a cut file still opens: the missing frames must show."""
    import av

    path = tmp_path / "faststart.mp4"
    with av.open(str(path), "w", format="mp4", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264" if _can_encode("libx264") else "mpeg4", rate=24)
        stream.width = stream.height = 48
        stream.pix_fmt = "yuv420p"
        for colour in COLOURS:
            for _ in range(4):
                for packet in stream.encode(av.VideoFrame.from_image(Image.new("RGB", (48, 48), colour))):
                    container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.95)])
    with pytest.raises(VideoError, match="truncated|cannot be decoded"):
        probe_video(cut)
    with pytest.raises(VideoError, match="truncated|cannot be decoded"):
        sample_frames(cut, 6)


def test_any_cut_of_a_video_gives_a_result_or_a_video_error(colours_mp4, tmp_path):
    """Every prefix of the file either reads as a whole video (full size, 4 frames in time order from
    what is left) or fails with a VideoError whose reason a person understands; nothing else escapes."""
    data = colours_mp4.read_bytes()
    full = probe_video(colours_mp4)
    outcomes = {"read": 0, "refused": 0}
    for i, length in enumerate(range(0, len(data), max(1, len(data) // 40))):
        cut = tmp_path / f"cut{i}.mp4"
        cut.write_bytes(data[:length])
        try:
            info = probe_video(cut)
            frames = sample_frames(cut, 4)
        except VideoError as error:
            assert str(error) and str(tmp_path) not in str(error)  # a reason, without the local path
            outcomes["refused"] += 1
            continue
        outcomes["read"] += 1
        assert (info.width, info.height) == (full.width, full.height) and 0 < info.frames <= full.frames
        assert len(frames) == 4 and all(f.size == (48, 48) for f in frames)
        order = [nearest_colour(f) for f in frames]
        assert order == sorted(order)  # still in time order
    assert outcomes["refused"] > 0  # the short prefixes (no header yet) are refused, not read as empty videos


def test_cache_hit_does_not_decode_again(colours_mp4, tmp_path, monkeypatch):
    cache_dir = tmp_path / "cache"
    first = FrameCache(cache_dir)
    jpegs = first.frames(colours_mp4, n=3, max_side=None)
    assert (first.decodes, first.hits) == (1, 0)
    assert [nearest_colour(Image.open(io.BytesIO(b))) for b in jpegs] == [1, 3, 5]
    assert all(b[:2] == b"\xff\xd8" for b in jpegs)  # JPEG magic
    entry = first.entry_dir(probe_video(colours_mp4).sha256, 3, None)
    mtimes = [p.stat().st_mtime_ns for p in sorted(entry.iterdir())]

    # a rebuild (new cache object, same folder) must not decode: make decoding impossible
    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded although the frames are cached")

    monkeypatch.setattr(video, "sample_frames", no_decoding)
    second = FrameCache(cache_dir)
    assert second.frames(colours_mp4, n=3, max_side=None) == jpegs
    assert (second.decodes, second.hits) == (0, 1)
    assert [p.stat().st_mtime_ns for p in sorted(entry.iterdir())] == mtimes
    assert frames_as_jpeg(colours_mp4, 3, cache_dir, max_side=None) == jpegs
    # another n or max_side is another entry: it needs decoding
    with pytest.raises(AssertionError, match="decoded"):
        second.frames(colours_mp4, n=2, max_side=None)


def test_cache_leaves_no_temporary_folders_and_keys_by_content(colours_mp4, tmp_path):
    cache_dir = tmp_path / "cache"
    copy = tmp_path / "renamed.mp4"
    copy.write_bytes(colours_mp4.read_bytes())
    cache = FrameCache(cache_dir)
    cache.frames(colours_mp4, n=2, max_side=32)
    cache.frames(copy, n=2, max_side=32)  # same bytes under another name: a hit
    assert (cache.decodes, cache.hits) == (1, 1)
    leftovers = [p for p in cache_dir.rglob("*") if p.name.startswith(".") or p.name.endswith(".tmp")]
    assert leftovers == []
    sizes = {Image.open(p).size for p in cache_dir.rglob("*.jpg")}
    assert sizes == {(32, 32)}


def test_frames_as_jpeg_without_cache(colours_mp4):
    jpegs = frames_as_jpeg(colours_mp4, 4, cache_dir=None)
    assert len(jpegs) == 4
    assert [nearest_colour(Image.open(io.BytesIO(b))) for b in jpegs] == [0, 2, 3, 5]  # frames 3, 9, 15, 21


def test_video_module_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, skyeye_data.video, skyeye_data.sources.capera, skyeye_data.sources.era; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def _can_encode(codec: str) -> bool:
    import av

    try:
        av.codec.Codec(codec, "w")
        return True
    except Exception:
        return False


def test_damaged_cache_entry_is_rebuilt(colours_mp4, tmp_path):
    cache = FrameCache(tmp_path / "cache")
    jpegs = cache.frames(colours_mp4, n=3, max_side=None)
    entry = cache.entry_dir(probe_video(colours_mp4).sha256, 3, None)
    (entry / "01.jpg").unlink()
    assert cache.frames(colours_mp4, n=3, max_side=None) == jpegs
    assert cache.decodes == 2
    assert cache.frames(colours_mp4, n=3, max_side=None) == jpegs
    assert (cache.decodes, cache.hits) == (2, 1)
