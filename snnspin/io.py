"""Atomic file writes: a run interrupted at any moment never leaves a half-written file.

Each writer writes a temporary file in the target's folder, flushes it to disk and then
renames it over the target (``os.replace`` is atomic on POSIX and Windows). The file gets
the mode a plain ``open`` would give it (0666 less the umask, e.g. 0644), not the 0600 of
the temporary file. ``load_torch_file`` reads back what ``atomic_torch_save`` wrote and
refuses anything else in one line.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import re
import tempfile
import warnings
from pathlib import Path

import torch


def _umask() -> int:
    """The process's umask (read from /proc where there is one, so it is never changed)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; create parent folders. Returns the path.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a" / "b.txt"
    >>> atomic_write_bytes(p, b"hi").read_bytes()
    b'hi'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if hasattr(os, "fchmod"):  # mkstemp makes 0600; give what open() would (0666 less the umask)
            os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path, text: str) -> Path:
    """Write ``text`` (UTF-8) atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path, obj) -> Path:
    """Write ``obj`` as indented JSON atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def atomic_torch_save(obj, path) -> Path:
    """``torch.save`` atomically (the result loads with ``weights_only=True`` for plain data)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def read_json(path):
    """Parse a JSON file."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def not_a_checkpoint(path, reason: str) -> ValueError:
    """The one-line error for a file that is not what snnspin saved.

    >>> str(not_a_checkpoint("w.pt", "empty file"))
    'w.pt: not a snnspin checkpoint (empty file); it was not loaded'
    """
    return ValueError(f"{path}: not a snnspin checkpoint ({reason}); it was not loaded")


def _load_failure(error: Exception) -> str:
    """Why ``torch.load(weights_only=True)`` failed, in a few words (PyTorch's advice to
    load with ``weights_only=False`` is left out on purpose)."""
    text = str(error)
    found = re.search(r"unsupported GLOBAL ([\w.]+)|Unsupported global: GLOBAL ([\w.]+)", text)
    if found:
        name = found.group(1) or found.group(2)
        return f"it asks to build the Python object {name}, which is not plain data; refused without running it"
    if isinstance(error, pickle.UnpicklingError):
        operand = re.search(r"(Unsupported operand \d+)", text)
        return "not a PyTorch save file, or corrupted" + (f": {operand.group(1)}" if operand else "")
    if "PytorchStreamReader" in text or "zip archive" in text:
        detail = re.search(r"failed [^.:]*: ([^.]*)", text)
        return "truncated or corrupted archive" + (f": {detail.group(1)}" if detail else "")
    if isinstance(error, EOFError):
        return "truncated: it ends too early"
    first = text.strip().splitlines()[0][:100] if text.strip() else ""
    kind = type(error).__name__
    kind = f"{type(error).__module__.lstrip('_')}.{kind}" if kind == "error" else kind  # struct.error, zlib.error
    return f"truncated or corrupted: {kind}" + (f": {first}" if first else "")


def load_torch_file(path, map_location="cpu"):
    """``torch.load(path, weights_only=True)`` of a file snnspin saved; any failure (missing,
    empty, truncated, corrupted, a pickle of other objects, which is never run) is one
    ``ValueError`` line naming the file.

    >>> import tempfile
    >>> path = f"{tempfile.mkdtemp()}/w.pt"
    >>> _ = open(path, "wb").write(b"junk")
    >>> load_torch_file(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: ...w.pt: not a snnspin checkpoint (truncated or corrupted: ...); it was not loaded
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    if path.is_dir():
        raise not_a_checkpoint(path, "a folder")
    if size == 0:
        raise not_a_checkpoint(path, "empty file")
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": the refusal below says enough
            warnings.simplefilter("ignore")
            return torch.load(path, map_location=map_location, weights_only=True)
    except PermissionError as error:
        raise ValueError(f"{path}: cannot be read ({error.strerror})") from None
    except Exception as error:  # whatever a damaged file makes the reader raise
        raise not_a_checkpoint(path, _load_failure(error)) from None
