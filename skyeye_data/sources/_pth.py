"""Read a ``.pth`` file that holds only plain Python data (lists, tuples, strings, numbers), safely.

RSVG (GeoVG) publishes its splits as ``rsvg_<split>.pth``: ``torch.save`` of a list of tuples
``(image_file, bbox, phrase, ...)``. Since torch 1.6, ``torch.save`` writes a zip archive whose
``<archive>/data.pkl`` is a pickle of the object (tensors, if any, are *persistent ids* pointing at
``<archive>/data/<key>`` storages and are rebuilt through ``torch._utils`` globals). A pickle can run
any code through its globals (``find_class``) and persistent loads, so this reader allows neither:
:class:`_PlainUnpickler` resolves **no** global (the allow-list :data:`ALLOWED_GLOBALS` is empty:
plain lists, tuples, dicts, strings, numbers, booleans and None need none) and refuses every persistent
id. Anything else — a tensor, a numpy array, a class instance, a legacy (pre-1.6) ``torch.save``
stream, a file that is not a zip — is refused with :class:`PthError` saying what was found.
``skyeye_data`` never imports torch; the tests write real ``.pth`` files with ``torch.save``.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from typing import Any

MAX_PICKLE_BYTES = 512 << 20  # the real rsvg_train.pth lists are a few MB
ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset()  # (module, name) pairs a plain-data file may name
# torch's legacy (non-zip) format starts with a pickled magic number
_LEGACY_MAGIC = (0x1950A86A20F9469CFC6C).to_bytes(10, "little")


class PthError(Exception):
    """The ``.pth`` file cannot be read as plain data; the message says why and what to do."""


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ALLOWED_GLOBALS:  # pragma: no cover - the allow-list is empty
            return super().find_class(module, name)
        what = "a tensor" if module.startswith("torch") else f"a {module}.{name} object"
        raise PthError(f"holds {what}; only plain Python lists, tuples, strings and numbers are read from a .pth "
                       "(no code is run, no tensor is rebuilt)")  # fmt: skip

    def persistent_load(self, pid: Any) -> Any:
        raise PthError("holds tensor storages; only plain Python lists, tuples, strings and numbers are read from a .pth")


def load_plain_pth(data: bytes) -> Any:
    """The object ``torch.save`` wrote into the file ``data`` (its bytes, read by the guarded raw reader),
    when it is plain data; :class:`PthError` otherwise."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        if _LEGACY_MAGIC in data[:16]:
            raise PthError("is in torch's legacy (pre-1.6) format; re-save it with a current torch.save(obj, path)") from None
        raise PthError("is not a torch.save archive (no zip structure)") from None
    with archive:
        pickles = [i for i in archive.infolist() if i.filename.endswith("/data.pkl") and i.filename.count("/") == 1]
        if len(pickles) != 1:
            raise PthError(f"is a zip but not a torch.save archive (expected one <archive>/data.pkl, found {len(pickles)})")
        info = pickles[0]
        if info.file_size > MAX_PICKLE_BYTES:
            raise PthError(f"holds a {info.file_size:,}-byte pickle, more than the {MAX_PICKLE_BYTES:,} allowed")
        data = archive.read(info)
    try:
        return _PlainUnpickler(io.BytesIO(data)).load()
    except PthError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError) as error:
        raise PthError(f"holds a pickle that cannot be read ({type(error).__name__}: {error})") from None
