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

The boundary is checked: ``KERNELS`` is the one table of every kernel's arguments (the C
functions take them in this order), and ``call`` checks each tensor's device, dtype,
contiguity and shape before a pointer is passed. Loading is thread-safe; a cached library
that does not load is rebuilt once, then the torch kernels are used with one warning. The
cache key holds the sources, the flags, the compiler's version, the C library's version and
the CPU. The constants the C code shares with ``snnspin.functional`` are passed to the
compiler from Python (``CONSTANTS``), never written twice.

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
import threading
import warnings
from pathlib import Path

import torch

from ..functional.exponential import _DCOEFFS, _SERIES_BELOW
from ..io import _umask
from ..functional.oscillator import _MIN_EXPONENT

SOURCE = Path(__file__).with_name("kernels.c")
SOURCES = (SOURCE, Path(__file__).with_name("kernels_body.h"), Path(__file__).with_name("sequence_body.h"))
#: Shared with the Python side, passed as -D flags; exported back as ``snnspin_constants``.
CONSTANTS = {
    "MIN_EXPONENT": _MIN_EXPONENT,  # exponent clamp of the exact step (functional/oscillator.py)
    "SERIES_BELOW": _SERIES_BELOW,  # F'(w) by its series below |w| (functional/exponential.py)
    # F(w) by its series (15 terms, 8 in float32) below |w| (C only: Python uses expm1)
    "RATIO_SERIES_BELOW": 0.5,
}
# kernels_body.h divides by w only where w <= -SERIES_BELOW, and takes 1/w once wherever either series
# does not apply: that reciprocal covers the ratio's range only while its series reaches further.
assert CONSTANTS["RATIO_SERIES_BELOW"] >= CONSTANTS["SERIES_BELOW"], "the reciprocal guard in kernels_body.h"
#: F'(w)'s series coefficients, which the C code holds as DERIVATIVE_COEFFS (compared in the tests).
DERIVATIVE_COEFFS = _DCOEFFS
#: Fused multiply-adds allowed (-ffp-contract=fast): ~20 % faster kernels; results move by an ulp or
#: so per operation, far inside the tests' 1e-13 (float64) agreement with the torch kernels.
FLAGS = ("-O3", "-march=native", "-fno-math-errno", "-ffp-contract=fast", "-fPIC", "-shared")
#: Tried in turn: threads over the rows (OpenMP, sharing torch's libgomp), else one thread.
THREADING = (("-fopenmp",), ("-fopenmp-simd",))
_DTYPES = {torch.float32: "f32", torch.float64: "f64"}

# Argument kinds: ROWS [L, B, N] state/drive/gradient arrays; WIDE [L, B, P + N] layer inputs and NOISE
# [L, 2, B, N] normal draws (either may be None: a NULL pointer); NEURON [L, N] per-neuron constants;
# SCALAR a double.
ROWS, WIDE, NOISE, NEURON, SCALAR = "rows", "wide", "noise", "neuron", "scalar"
_OPTIONAL = (WIDE, NOISE)
#: Every kernel's arguments after (L, B, N, P, depth, lo, hi), in the C functions' order: the one table.
KERNELS = {
    "osc_forward": (("syn", ROWS), ("x", ROWS), ("y", ROWS), ("gain", NEURON), ("gamma", NEURON),
                    ("bias_fixed", NEURON), ("sigma", NEURON), ("q", NEURON), ("e_hp", NEURON), ("k_hp", NEURON),
                    ("x_min", NEURON), ("kick", NEURON), ("noise", NOISE), ("h", SCALAR), ("x_out", ROWS), ("y_out", ROWS),
                    ("z_next", WIDE)),
    "osc_backward": (("back", WIDE), ("gx", ROWS), ("gy", ROWS), ("x_old", ROWS), ("syn", ROWS), ("gain", NEURON),
                     ("gamma", NEURON), ("bias_fixed", NEURON), ("sigma", NEURON), ("q", NEURON), ("e_hp", NEURON),
                     ("k_hp", NEURON), ("x_min", NEURON), ("kick", NEURON), ("noise", NOISE), ("h", SCALAR),
                     ("dsyn_out", ROWS), ("g_gain", ROWS), ("g_a_sum", ROWS), ("g_b_sum", ROWS)),
    "ctrnn_forward": (("syn", ROWS), ("x", ROWS), ("step_gain", NEURON), ("decay", NEURON), ("x_out", ROWS),
                      ("y_out", ROWS), ("z_next", WIDE)),
    "ctrnn_backward": (("back", WIDE), ("gx", ROWS), ("gy", ROWS), ("y", ROWS), ("step_gain", NEURON),
                       ("decay", NEURON), ("g_state", ROWS), ("dsyn_out", ROWS)),
}
# Whole-sequence loops (sequence_body.h; run by ``snnspin.native.sequences``). Of one layer (*_seq),
# argument kinds after (steps, B, N, gemm): STEPS [steps, B, N] and OUTPUTS [steps + 1, B, N] arrays,
# STATE [B, N] and PAIR [2, B, N] states, SQUARE [N, N] weights, LAYER [1, N] per-neuron constants,
# DRAWS [steps, 1, 2, B, N] draws (or None) followed by their step stride, an INDEX; SCALAR a double.
# Of every layer along the diagonals (*_diag), after (D, L, B, N, P, depth, steps, gemm): GRID [D, L, B, N], INPUTS
# [D, L, B, P + N], ROWS [L, B, N], WIDE [L, B, P + N], WEIGHTS [L, N, P + N], NEURON [L, N],
# GRID_DRAWS [D, L, 2, B, N] (or None).
STEPS, OUTPUTS, STATE, SQUARE, LAYER, DRAWS, INDEX = "steps", "outputs", "state", "square", "layer", "draws", "index"
PAIR = "pair"  # [2, B, N]: two states used in turn (osc_forward_keep_seq)
GRID, INPUTS, WEIGHTS, GRID_DRAWS = "grid", "inputs", "weights", "grid_draws"
_OSC_NEURONS = (("gain", NEURON), ("gamma", NEURON), ("bias_fixed", NEURON), ("sigma", NEURON), ("q", NEURON),
                ("e_hp", NEURON), ("k_hp", NEURON), ("x_min", NEURON), ("kick", NEURON), ("noise", GRID_DRAWS),
                ("h", SCALAR))
_OSC_CONSTANTS = (("gain", LAYER), ("gamma", LAYER), ("bias_fixed", LAYER), ("sigma", LAYER), ("q", LAYER),
                  ("e_hp", LAYER), ("k_hp", LAYER), ("x_min", LAYER), ("kick", LAYER), ("noise", DRAWS),
                  ("noise_stride", INDEX), ("h", SCALAR))
SEQUENCES = {
    "osc_forward_seq": (("w_int", SQUARE), ("syn", STEPS), ("x0", STATE), ("ys", OUTPUTS), ("xs", STEPS),
                        *_OSC_CONSTANTS),
    "osc_backward_seq": (("w_int", SQUARE), ("gx", STATE), ("gy", STATE), ("x0", STATE), ("xs", STEPS),
                         ("syn", STEPS), *_OSC_CONSTANTS, ("dsyn", STEPS), ("g_gain", STATE), ("g_a_sum", STATE),
                         ("g_b_sum", STATE), ("g_above", STEPS)),
    "osc_forward_keep_seq": (("w_int", SQUARE), ("syn", STEPS), ("x0", STATE), ("ys", OUTPUTS), ("ds", STEPS),
                             ("x_pair", PAIR), *_OSC_CONSTANTS),
    "osc_backward_kept_seq": (("w_int", SQUARE), ("gx", STATE), ("gy", STATE), ("cs", STEPS), ("ds", STEPS),
                              ("e_hp", LAYER), ("k_hp", LAYER), ("dsyn", STEPS), ("g_above", STEPS)),
    "ctrnn_forward_seq": (("w_int", SQUARE), ("syn", STEPS), ("x0", STATE), ("ys", OUTPUTS), ("xs", STEPS),
                          ("step_gain", LAYER), ("decay", LAYER)),
    "ctrnn_backward_seq": (("w_int", SQUARE), ("gx", STATE), ("gy", STATE), ("ys", OUTPUTS), ("step_gain", LAYER),
                           ("decay", LAYER), ("g_state", STEPS), ("dsyn", STEPS), ("g_above", STEPS)),
    "osc_forward_diag": (("w", WEIGHTS), ("bias", NEURON), ("z", INPUTS), ("syn", GRID), ("x0", ROWS), ("y", ROWS),
                         ("y_spare", ROWS), ("xs", GRID), *_OSC_NEURONS),
    "osc_backward_diag": (("w", WEIGHTS), ("z", INPUTS), ("back", WIDE), ("gx", ROWS), ("gy", ROWS), ("x0", ROWS),
                          ("xs", GRID), ("syn", GRID), *_OSC_NEURONS, ("dsyn", GRID), ("g_gain", ROWS),
                          ("g_a_sum", ROWS), ("g_b_sum", ROWS), ("g_w", WEIGHTS), ("g_sum", ROWS)),
    "ctrnn_forward_diag": (("w", WEIGHTS), ("bias", NEURON), ("z", INPUTS), ("syn", ROWS), ("x0", ROWS), ("xs", GRID),
                           ("ys", GRID), ("step_gain", NEURON), ("decay", NEURON)),
    "ctrnn_backward_diag": (("w", WEIGHTS), ("z", INPUTS), ("back", WIDE), ("gx", ROWS), ("gy", ROWS), ("ys", GRID),
                            ("step_gain", NEURON), ("decay", NEURON), ("g_state", GRID), ("dsyn", GRID),
                            ("g_w", WEIGHTS), ("g_sum", ROWS)),
}
#: The size arguments before the GEMM's address: (steps, B, N) of one layer, (D, L, B, N, P, depth, steps) of a grid.
SEQUENCE_SIZES = {"seq": 3, "diag": 7}
_INDEX = ctypes.c_int64
_CTYPE = {ROWS: ctypes.c_void_p, WIDE: ctypes.c_void_p, NOISE: ctypes.c_void_p, NEURON: ctypes.c_void_p,
          SCALAR: ctypes.c_double, INDEX: _INDEX}
_CTYPE.update({kind: ctypes.c_void_p for kind in (STEPS, OUTPUTS, STATE, SQUARE, LAYER, DRAWS, GRID, INPUTS, WEIGHTS,
                                                  GRID_DRAWS, PAIR)})
_state: dict = {}
_lock = threading.RLock()


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


def _compiler_version(compiler: str) -> str:
    try:
        return subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def _defines() -> list[str]:
    return [f"-D{name}={value!r}" for name, value in CONSTANTS.items()]


def _library_path(compiler: str) -> Path:
    key = hashlib.sha256()
    for part in (*(path.read_bytes() for path in SOURCES), " ".join(FLAGS + tuple(_defines())).encode(),
                 repr(THREADING).encode(), compiler.encode(), _compiler_version(compiler).encode(),
                 " ".join(platform.libc_ver()).encode(), _cpu_model().encode(), platform.machine().encode()):
        key.update(part)
    return cache_dir() / f"kernels-{key.hexdigest()[:16]}.so"


def _compiler() -> str:
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise RuntimeError("no C compiler (cc or gcc) on PATH")
    return compiler


def build(force: bool = False) -> Path:
    """Compile ``kernels.c`` into the cache (atomically: parallel workers may race) and
    return the library's path; ``force`` rebuilds a cached one. Raises ``RuntimeError``
    when no compiler works."""
    compiler = _compiler()
    target = _library_path(compiler)
    if target.exists() and not force:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        for threads in THREADING:
            result = subprocess.run([compiler, *FLAGS, *threads, *_defines(), str(SOURCE), "-o", tmp, "-lm"],
                                    capture_output=True, text=True)
            if result.returncode == 0:
                break
        else:
            raise RuntimeError(f"{compiler} failed on {SOURCE.name}:\n{result.stderr.strip()}")
        os.chmod(tmp, 0o755 & ~_umask())  # the same permissions as any file the compiler would write
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def _bind(path: Path) -> dict:
    library = ctypes.CDLL(str(path))
    functions = {}
    for name, arguments in KERNELS.items():
        argtypes = [_INDEX] * 7 + [_CTYPE[kind] for _, kind in arguments]
        for suffix in _DTYPES.values():
            function = getattr(library, f"{name}_{suffix}")
            function.argtypes, function.restype = argtypes, None
            functions[name, suffix] = function
    for name, arguments in SEQUENCES.items():
        argtypes = [_INDEX] * SEQUENCE_SIZES[name.rsplit("_", 1)[1]] + [ctypes.c_void_p] + \
            [_CTYPE[kind] for _, kind in arguments]
        for suffix in _DTYPES.values():
            function = getattr(library, f"{name}_{suffix}")
            function.argtypes, function.restype = argtypes, None
            functions[name, suffix] = function
    functions["constants"] = tuple((ctypes.c_double * len(CONSTANTS)).in_dll(library, "snnspin_constants"))
    functions["derivative_coeffs"] = tuple((ctypes.c_double * len(DERIVATIVE_COEFFS)).in_dll(library,
                                                                                              "DERIVATIVE_COEFFS"))
    return functions


def _load():
    with _lock:  # a second thread waits for the first one's build instead of silently taking the torch kernels
        if "library" in _state:
            return _state["library"]
        _state["library"] = None
        if os.environ.get("SNNSPIN_NATIVE", "1") == "0":
            return None
        try:
            path = build()
            try:
                _state["library"] = _bind(path)
            except (OSError, AttributeError, ValueError):  # a cached build that does not load: rebuild it once
                _state["library"] = _bind(build(force=True))
        except (RuntimeError, OSError, AttributeError, ValueError) as error:
            warnings.warn(f"snnspin: native kernels unavailable ({error}); using the torch kernels "
                          "(same results to rounding, slower on CPU)", RuntimeWarning, stacklevel=3)
        return _state["library"]


def available() -> bool:
    """True when the native kernels are built and loaded (building them if needed)."""
    return _load() is not None


def supports(tensor: torch.Tensor) -> bool:
    """Whether the native kernels can run on ``tensor``'s device and dtype (CPU, float32/64)."""
    return tensor.device.type == "cpu" and tensor.dtype in _DTYPES and available()


def compiled_constants() -> dict:
    """The shared constants as the loaded library holds them (for the tests), or {} without it."""
    library = _load()
    if library is None:
        return {}
    return {**dict(zip(CONSTANTS, library["constants"])), "DERIVATIVE_COEFFS": library["derivative_coeffs"]}


def _check(kernel: str, name: str, kind: str, value, dtype, shapes: dict):
    if kind == SCALAR:
        return float(value)
    if value is None:
        if kind not in _OPTIONAL:
            raise ValueError(f"native {kernel}: {name} is required")
        return None
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"native {kernel}: {name} must be a tensor, got {type(value).__name__}")
    expected = shapes[kind]
    if value.device.type != "cpu" or value.dtype != dtype or tuple(value.shape) != expected or \
            not value.is_contiguous():
        raise ValueError(f"native {kernel}: {name} must be a contiguous CPU {dtype} tensor of shape {expected}, "
                         f"got {value.dtype} {tuple(value.shape)} on {value.device}"
                         f"{'' if value.is_contiguous() else ', not contiguous'}")
    return value.data_ptr()


def call(kernel: str, lo: int, hi: int, checked: bool = True, depth: int | None = None, **arguments) -> None:
    """Run ``kernel`` (a key of ``KERNELS``) on one diagonal, after checking every argument.

    ``depth``: the layers per network when the L layers hold several networks of the same shape,
    network by network (an ensemble, ``snnspin.fused``); None: one network of L layers. The active
    layers [lo, hi] count within each network.

    The sizes come from the first ROWS tensor ([L, B, N]) and from a WIDE one ([L, B, P + N]),
    whose P must be ≥ N: the threads write a row's recurrent columns and the next layer's
    signal columns, which overlap otherwise. ``checked=False`` skips the per-tensor checks:
    only for a caller whose arguments are views that an earlier checked call already passed
    in the same form (the fused loops check their first two diagonals, and every later
    diagonal's arguments are views of the same arrays, cut the same way).
    """
    table = KERNELS[kernel]
    rows = arguments[_FIRST_ROWS[kernel]]
    layers, batch, n = rows.shape
    wide = next((arguments[name] for name in _WIDE[kernel] if arguments[name] is not None), None)
    p = wide.shape[-1] - n if wide is not None else n
    depth = layers if depth is None else depth
    library = _state.get("library") or _load()  # loaded once: no lock on the per-diagonal calls
    if not checked:  # the per-diagonal path: pointers only (the tensors are the checked ones' kin)
        values = [None if (value := arguments[name]) is None else float(value) if scalar else value.data_ptr()
                  for name, scalar in _POINTERS[kernel]]
        library[kernel, _DTYPES[rows.dtype]](layers, batch, n, p, depth, lo, hi, *values)
        return
    if set(arguments) != _NAMES[kernel]:
        raise TypeError(f"native {kernel}: missing {sorted(_NAMES[kernel] - set(arguments))}, "
                        f"unexpected {sorted(set(arguments) - _NAMES[kernel])}")
    if p < n:
        raise ValueError(f"native {kernel}: the layer inputs have {p} signal columns for {n} neurons; "
                         "they must be at least as many (the threads' writes would overlap)")
    if not (isinstance(depth, int) and 0 < depth <= layers and layers % depth == 0):
        raise ValueError(f"native {kernel}: depth {depth!r} does not divide the {layers} layers into networks")
    if not 0 <= lo <= hi < depth:
        raise ValueError(f"native {kernel}: active layers [{lo}, {hi}] outside [0, {depth - 1}]")
    shapes = {ROWS: (layers, batch, n), WIDE: (layers, batch, p + n), NOISE: (layers, 2, batch, n),
              NEURON: (layers, n)}
    values = [_check(kernel, name, kind, arguments[name], rows.dtype, shapes) for name, kind in table]
    library[kernel, _DTYPES[rows.dtype]](layers, batch, n, p, depth, lo, hi, *values)


_NAMES = {kernel: {name for name, _ in table} for kernel, table in KERNELS.items()}
_FIRST_ROWS = {kernel: next(name for name, kind in table if kind == ROWS) for kernel, table in KERNELS.items()}
_WIDE = {kernel: [name for name, kind in table if kind == WIDE] for kernel, table in KERNELS.items()}
_POINTERS = {kernel: [(name, kind == SCALAR) for name, kind in table] for kernel, table in KERNELS.items()}
