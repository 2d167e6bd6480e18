"""Native (C) pointwise kernels for the fused path on CPU, built at first use.

The fused sequence path (``snnspin.fused``) spends, per diagonal of the time × depth
grid, one matmul and one pointwise update. Written with torch operations the update is
~20 (forward) and ~30 (backward) small kernels, and at the paper's size their per-call
overhead is most of the training time. ``kernels.c`` does each update in one pass.

It is compiled once per machine with the system C compiler (``cc``, ~1 s; with OpenMP
threads over the rows when the compiler supports ``-fopenmp``), cached as
``<cache>/kernels-<hash>.so`` (``$SNNSPIN_CACHE``, else ``$XDG_CACHE_HOME/snnspin``, else
``~/.cache/snnspin``) and loaded with ctypes: no build step at install time and no
dependency beyond a C compiler. Without one — or with ``SNNSPIN_NATIVE=0`` — the torch
kernels run instead, with the same results to rounding (tested to 1e-12 in float64).

>>> from snnspin import native
>>> native.available() in (True, False)
True
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("kernels.c")
SOURCES = (SOURCE, Path(__file__).with_name("kernels_body.h"))
FLAGS = ("-O3", "-march=native", "-fno-math-errno", "-ffp-contract=off", "-fPIC", "-shared")
#: Tried in turn: threads over the rows (OpenMP, sharing torch's libgomp), else one thread.
THREADING = (("-fopenmp",), ("-fopenmp-simd",))
_DTYPES = {torch.float32: "f32", torch.float64: "f64"}
_state: dict = {}


def cache_dir() -> Path:
    """Where the compiled library is kept (created on demand)."""
    if os.environ.get("SNNSPIN_CACHE"):
        return Path(os.environ["SNNSPIN_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "snnspin"


def _cpu_model() -> str:
    """The CPU's model and feature flags: the library is built with -march=native, so a cache
    shared between machines (an NFS home) must not hand one CPU's build to another."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor()
    first = {}
    for line in lines:
        key = line.split(":")[0].strip()
        if key in ("model name", "flags", "Features", "CPU part") and key not in first:
            first[key] = line
    return "\n".join(first.values()) or platform.processor()


def _library_path(compiler: str) -> Path:
    key = hashlib.sha256()
    for part in (*(path.read_bytes() for path in SOURCES), " ".join(FLAGS).encode(), repr(THREADING).encode(),
                 compiler.encode(), _cpu_model().encode(), platform.machine().encode()):
        key.update(part)
    return cache_dir() / f"kernels-{key.hexdigest()[:16]}.so"


def build() -> Path:
    """Compile ``kernels.c`` into the cache (atomically: parallel workers may race) and
    return the library's path. Raises ``RuntimeError`` when no compiler works."""
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise RuntimeError("no C compiler (cc or gcc) on PATH")
    target = _library_path(compiler)
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        for threading in THREADING:
            result = subprocess.run([compiler, *FLAGS, *threading, str(SOURCE), "-o", tmp, "-lm"],
                                    capture_output=True, text=True)
            if result.returncode == 0:
                break
        else:
            raise RuntimeError(f"{compiler} failed on {SOURCE.name}:\n{result.stderr.strip()}")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


_POINTER, _LONG, _DOUBLE = ctypes.c_void_p, ctypes.c_long, ctypes.c_double
_SIGNATURES = {
    "osc_forward": [_LONG] * 6 + [_POINTER] * 6 + [_DOUBLE] * 5 + [_POINTER] * 3,
    "osc_backward": [_LONG] * 6 + [_POINTER] * 8 + [_DOUBLE] * 5 + [_POINTER] * 4,
    "ctrnn_forward": [_LONG] * 6 + [_POINTER] * 4 + [_POINTER] * 3,
    "ctrnn_backward": [_LONG] * 6 + [_POINTER] * 6 + [_POINTER] * 2,
}


def _load():
    if "library" not in _state:
        _state["library"] = None
        if os.environ.get("SNNSPIN_NATIVE", "1") == "0":
            return None
        try:
            library = ctypes.CDLL(str(build()))
            functions = {}
            for name, argtypes in _SIGNATURES.items():
                for suffix in _DTYPES.values():
                    function = getattr(library, f"{name}_{suffix}")
                    function.argtypes, function.restype = argtypes, None
                    functions[name, suffix] = function
            _state["library"] = functions
        except (RuntimeError, OSError) as error:
            warnings.warn(f"snnspin: native kernels unavailable ({error}); using the torch kernels "
                          "(same results to rounding, slower on CPU)", RuntimeWarning, stacklevel=3)
    return _state["library"]


def available() -> bool:
    """True when the native kernels are built and loaded (building them if needed)."""
    return _load() is not None


def supports(tensor: torch.Tensor) -> bool:
    """Whether the native kernels can run on ``tensor``'s device and dtype (CPU, float32/64)."""
    return tensor.device.type == "cpu" and tensor.dtype in _DTYPES and available()


def function(name: str, dtype: torch.dtype):
    """The ctypes function ``name`` (``osc_forward``, ...) for ``dtype``."""
    return _load()[name, _DTYPES[dtype]]
