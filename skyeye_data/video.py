"""Video access for the video sources (CapERA, ERA): probing, uniform frame sampling, a frame cache.

Everything decodes with PyAV (FFmpeg). A video that cannot be opened, has no video stream, or ends
before the frames its header declares raises :class:`VideoError`, whose message is a reason a
person understands; the converters turn it into a quarantine entry.

Frames are sampled uniformly over the video's frames: frame ``i`` of ``n`` is the one at the middle
of the ``i``-th of ``n`` equal slices, so 4 frames of a 120-frame clip are frames 15, 45, 75, 105.
Sampling by frame index rather than by timestamp works for streams without a duration; a stream
without a frame count is counted by demuxing (no decoding) first.

:class:`FrameCache` keeps sampled frames as JPEG bytes on disk, keyed by the video's content hash,
``n`` and ``max_side``, so rebuilding a dataset does not decode the videos again.
"""

from __future__ import annotations

import io
import os
import shutil
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import av
from PIL import Image

from skyeye_data import rawfs
from skyeye_data.hashing import file_sha256
from skyeye_data.imagecheck import still_image_problem

JPEG_QUALITY = 90
DEFAULT_MAX_SIDE = 448  # the model's input side (DESIGN.md); larger frames only cost space
_AV_ERRORS = (av.error.FFmpegError, OSError, ValueError, EOFError, IndexError)


class VideoError(Exception):
    """A video that is missing, unreadable or truncated; the message is the quarantine reason."""


def _describe(error: Exception) -> str:
    """An FFmpeg error without the file path it carries (reasons must not leak local paths)."""
    text = getattr(error, "strerror", None) or str(error)
    return f"{type(error).__name__}: {text}"


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    frames: int  # video packets = frames (demuxed, so a truncated file shows fewer than declared)
    declared_frames: int  # from the container header; 0 when the container does not say
    duration_s: float | None
    codec: str
    sha256: str


def _open(path: Path):
    try:  # the guarded reader's rules before FFmpeg opens it: inside the raw root, a regular file, size cap
        rawfs.check_path(path, "video")
    except rawfs.RawFileMissing:
        raise VideoError(f"video file not found: {path.name}") from None
    except rawfs.RawAccessError as error:
        raise VideoError(error.reason) from None
    try:
        container = av.open(str(path), mode="r")
    except _AV_ERRORS as error:
        raise VideoError(f"video cannot be opened ({_describe(error)})") from error
    if problem := still_image_problem(container):  # a JPEG renamed .mp4 opens as a one-frame "video"
        container.close()
        raise VideoError(f"{problem}: {path.name}")
    if not container.streams.video:
        container.close()
        raise VideoError(f"file has no video stream: {path.name}")
    if container.streams.video[0].codec_context is None:  # header cut before the codec description
        container.close()
        raise VideoError("video stream has no usable codec description (damaged header)")
    return container


def _count_packets(path: Path) -> int:
    """Video packets in the file, by demuxing only (cheap: nothing is decoded)."""
    with _open(path) as container:
        stream = container.streams.video[0]
        try:
            return sum(1 for packet in container.demux(stream) if packet.size)
        except _AV_ERRORS as error:
            raise VideoError(f"video cannot be read ({_describe(error)})") from error


def probe_video(path: Path) -> VideoInfo:
    """Size, frame count, codec and sha256 of a video; raises :class:`VideoError` when it is unusable.

    Cached per (path, size, mtime): ERA and CapERA probe the same files, and a file changed on disk
    is probed again.
    """
    path = Path(path)
    try:
        stat = path.stat()
    except OSError:
        raise VideoError(f"video file not found: {path.name}") from None
    return _probe_video(path, stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=8192)
def _probe_video(path: Path, size: int, mtime_ns: int) -> VideoInfo:  # noqa: ARG001 (cache key)
    """Header facts, a demux pass to check the packets are all there, and one decoded frame.

    Decoding one frame proves the codec works; counting packets against the header catches
    truncated files, without the cost of decoding every frame.
    """
    with _open(path) as container:
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        declared = int(stream.frames or 0)
        duration = float(container.duration / av.time_base) if container.duration else None
        codec = stream.codec_context.name
        try:
            decoded_one = any(True for _ in container.decode(stream))
        except _AV_ERRORS as error:
            raise VideoError(f"video cannot be decoded ({_describe(error)})") from error
    if not decoded_one:
        raise VideoError(f"video has no decodable frame: {path.name}")
    if width <= 0 or height <= 0:
        raise VideoError(f"video has no pixels ({width}x{height})")
    packets = _count_packets(path)
    if declared and packets < declared:
        raise VideoError(f"video is truncated: {packets} of {declared} frames present")
    return VideoInfo(width, height, packets, declared, duration, codec, file_sha256(path))


def frame_indices(total: int, n: int) -> list[int]:
    """Indices of ``n`` frames spread uniformly over ``total`` (repeats when ``n`` > ``total``)."""
    if total <= 0:
        raise VideoError("video has no frames")
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    return [min(total - 1, int((i + 0.5) * total / n)) for i in range(n)]


def _resized(image: Image.Image, max_side: int | None) -> Image.Image:
    if max_side and max(image.size) > max_side:
        scale = max_side / max(image.size)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        return image.resize(size, Image.Resampling.BICUBIC)
    return image


def sample_frames(video_path: Path, n: int = 4, max_side: int | None = None) -> list[Image.Image]:
    """``n`` RGB frames spread uniformly over the video, in time order, optionally downscaled.

    Raises :class:`VideoError` when the video cannot be decoded or ends before its declared frames.
    """
    video_path = Path(video_path)
    with _open(video_path) as container:
        total = int(container.streams.video[0].frames or 0)
    if total == 0:  # the container does not say: count the packets
        total = _count_packets(video_path)
    wanted = frame_indices(total, n)
    picked: dict[int, Image.Image] = {}
    decoded = 0
    with _open(video_path) as container:
        stream = container.streams.video[0]
        try:
            for index, frame in enumerate(container.decode(stream)):
                decoded = index + 1
                if index in wanted:
                    picked[index] = _resized(frame.to_image().convert("RGB"), max_side)
                if index >= wanted[-1]:
                    break
        except _AV_ERRORS as error:
            raise VideoError(
                f"video cannot be decoded after {decoded} frames ({_describe(error)})"
            ) from error
    missing = [i for i in wanted if i not in picked]
    if missing:
        raise VideoError(f"video is truncated: frame {missing[0]} of {total} not decodable ({decoded} decoded)")
    return [picked[i] for i in wanted]


def encode_jpeg(image: Image.Image, quality: int = JPEG_QUALITY) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


class FrameCache:
    """Sampled frames as JPEG files under ``cache_dir/<sha[:2]>/<sha>-n<N>-s<max_side>/NN.jpg``.

    An entry is written into a temporary folder and renamed into place when complete, so a killed
    run leaves no half entry. ``decodes`` and ``hits`` count what the cache did (tests, summaries).
    """

    def __init__(self, cache_dir: Path):
        self.cache_dir = Path(cache_dir)
        self.decodes = 0
        self.hits = 0

    def entry_dir(self, video_sha256: str, n: int, max_side: int | None) -> Path:
        return self.cache_dir / video_sha256[:2] / f"{video_sha256}-n{n}-s{max_side or 0}"

    def frames(
        self, video_path: Path, n: int = 4, max_side: int | None = DEFAULT_MAX_SIDE, video_sha256: str | None = None
    ) -> list[bytes]:
        """JPEG bytes of ``n`` uniformly sampled frames, from the cache or decoded and stored."""
        video_path = Path(video_path)
        if video_sha256 is None:
            if not video_path.is_file():
                raise VideoError(f"video file not found: {video_path.name}")
            video_sha256 = file_sha256(video_path)
        entry = self.entry_dir(video_sha256, n, max_side)
        cached = self._read(entry, n)
        if cached is not None:
            self.hits += 1
            return cached
        if entry.exists():  # damaged by hand (entries are written whole): replace it
            shutil.rmtree(entry)
        self.decodes += 1
        jpegs = [encode_jpeg(image) for image in sample_frames(video_path, n, max_side)]
        self._write(entry, jpegs)
        return jpegs

    @staticmethod
    def _read(entry: Path, n: int) -> list[bytes] | None:
        paths = [entry / f"{i:02d}.jpg" for i in range(n)]
        if not all(p.is_file() for p in paths):
            return None
        return [p.read_bytes() for p in paths]

    @staticmethod
    def _write(entry: Path, jpegs: Sequence[bytes]) -> None:
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = entry.with_name(f".{entry.name}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        for i, data in enumerate(jpegs):
            (tmp / f"{i:02d}.jpg").write_bytes(data)
        try:
            os.rename(tmp, entry)
        except OSError:  # another process stored the same entry first: theirs is as good
            shutil.rmtree(tmp, ignore_errors=True)


def frames_as_jpeg(
    video_path: Path,
    n: int = 4,
    cache_dir: Path | None = None,
    max_side: int | None = DEFAULT_MAX_SIDE,
    video_sha256: str | None = None,
) -> list[bytes]:
    """``n`` frames of the video, uniformly over its duration and in order, as JPEG bytes.

    With ``cache_dir`` the frames come from (or go to) a :class:`FrameCache` there. Pass the
    record's ``image_sha256`` as ``video_sha256`` to skip hashing the file again.
    """
    if cache_dir is None:
        return [encode_jpeg(image) for image in sample_frames(Path(video_path), n, max_side)]
    return FrameCache(cache_dir).frames(Path(video_path), n, max_side, video_sha256)


# ---------------------------------------------------------------------------------------------
# Writing small videos (synthetic corpora and tests)
# ---------------------------------------------------------------------------------------------


def _video_codec() -> str:
    """h264 like the real ERA videos when this FFmpeg build can encode it, else MPEG-4 part 2."""
    for name in ("libx264", "mpeg4"):
        try:
            av.codec.Codec(name, "w")
            return name
        except _AV_ERRORS:
            continue
    raise VideoError("this PyAV build can encode neither libx264 nor mpeg4")


def write_video(path: Path, frames: Sequence[Image.Image], fps: int = 24, container_format: str = "mp4") -> Path:
    """Encode RGB frames (all one even size) as a video, deterministically (same frames, same bytes).

    ``container_format`` is FFmpeg's muxer name: "mp4" (the datasets' format), or e.g. "matroska",
    whose header holds no frame count.

    Written under a temporary name and renamed when complete.
    """
    from skyeye_data.io import atomic_path

    path = Path(path)
    width, height = frames[0].size
    codec = _video_codec()
    with atomic_path(path) as tmp:
        with av.open(str(tmp), mode="w", format=container_format) as container:
            stream = container.add_stream(codec, rate=fps)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            # one thread and a fixed preset keep the bytes reproducible
            stream.options = {"preset": "ultrafast", "threads": "1"} if codec == "libx264" else {}
            stream.thread_count = 1
            for image in frames:
                for packet in stream.encode(av.VideoFrame.from_image(image.convert("RGB"))):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    return path
