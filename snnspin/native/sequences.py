"""Whole-sequence C loops for both fused schemes (``sequence_body.h``).

Per solver step (layer by layer, ``snnspin.fused_layerwise``) or per diagonal (``snnspin.fused``)
a fused pass runs a matrix product and one pointwise update. Driven from Python that is two
or three calls and a few views per step, whose overhead at the paper's size and up to widths
of about 256 is as large as the work. ``run`` hands the whole loop to C: the products through
the BLAS GEMM that torch's own CPU library exports (``sgemm_`` / ``dgemm_``, MKL in the x86
wheels; found in the loaded ``libtorch_cpu``), the updates through the same per-diagonal
kernels. ``*_seq`` loops run one layer's steps, ``*_diag`` loops every layer's diagonals. Same
results as the Python loops to rounding (the tests hold both, and the per-step reference
path, to 1e-12 in float64).

``ready(tensor)`` says whether the loops can run: the native kernels are loaded, the tensor is a
CPU float32/64 one, and torch's library exports the GEMM. Otherwise the Python loop runs.
``ENABLED`` switches them off (the tests compare the two loops).

Large buffers: a fused pass allocates its per-step buffers (megabytes to gigabytes) afresh for
every batch. glibc serves blocks above its mmap threshold (at most 32 MiB) with fresh pages and
returns them to the system when freed, so every training step faulted its buffers in again page
by page: about a third of a step at T = 256 (width 128: 339 → 252 ms per step; width 32: 64 →
41 ms; one core, this machine). The first time the loops run, ``keep_large_buffers`` raises
glibc's mmap threshold (``mallopt``) to 1 GiB (32 MiB where a glibc refuses more) and its trim
threshold to 2 GiB − 1, so that freed buffers stay in the process and the next step reuses them:
the process keeps up to its peak memory until it ends, as PyTorch's own GPU allocator does. ``SNNSPIN_KEEP_BUFFERS=0`` leaves the allocator as it is;
elsewhere than glibc nothing changes.

>>> from snnspin.native import sequences
>>> sequences.ready(torch.zeros(1)) in (True, False)
True
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

import torch

from . import (DRAWS, GRID, GRID_DRAWS, INDEX, INPUTS, LAYER, NEURON, OUTPUTS, PAIR, ROWS, SCALAR, SEQUENCES, SQUARE,
               STATE, STEPS, WEIGHTS, WIDE, _DTYPES, _load, _lock, _state, supports)

#: False: both fused schemes keep their Python loops (the tests compare the two).
ENABLED = True
_GEMM = {torch.float32: "sgemm_", torch.float64: "dgemm_"}
#: torch's CPU library, in which the GEMM is looked up (Linux, macOS, Windows names).
_TORCH_LIBRARIES = ("libtorch_cpu.so", "libtorch_cpu.dylib", "torch_cpu.dll")


def _gemm_addresses() -> dict:
    """{dtype: address of torch's exported Fortran GEMM} ({} when it exports none)."""
    with _lock:
        if "gemm" not in _state:
            found = {}
            folder = Path(torch.__file__).parent / "lib"
            for name in _TORCH_LIBRARIES:
                if (folder / name).exists():
                    try:
                        library = ctypes.CDLL(str(folder / name))
                        found = {dtype: ctypes.cast(getattr(library, symbol), ctypes.c_void_p).value
                                 for dtype, symbol in _GEMM.items()}
                    except (OSError, AttributeError):
                        found = {}
                    break
            _state["gemm"] = {dtype: address for dtype, address in found.items() if _gemm_agrees(address, dtype)}
        return _state["gemm"]


def _gemm_agrees(address: int, dtype: torch.dtype) -> bool:
    """Whether the GEMM at ``address``, called as the C loops call it (integers in 64-bit slots,
    see sequence_body.h), computes a small product as torch does."""
    scalar = ctypes.c_float if dtype == torch.float32 else ctypes.c_double
    integer, pointer = ctypes.POINTER(ctypes.c_int64), ctypes.c_void_p
    gemm = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_char_p, integer, integer, integer, ctypes.POINTER(scalar),
                            pointer, integer, pointer, integer, ctypes.POINTER(scalar), pointer, integer)(address)
    a = torch.arange(1.0, 7.0, dtype=dtype).reshape(2, 3)  # row-major [2, 3]: column-major [3, 2]
    b = torch.arange(1.0, 9.0, dtype=dtype).reshape(4, 2) - 4  # column-major [2, 4]
    c = torch.full((4, 3), 0.5, dtype=dtype)  # column-major [3, 4]: c = 1 * a b + 1 * c
    size = {name: ctypes.c_int64(value) for name, value in (("m", 3), ("n", 4), ("k", 2))}
    one = scalar(1.0)
    gemm(b"N", b"N", size["m"], size["n"], size["k"], one, a.data_ptr(), size["m"], b.data_ptr(), size["k"], one,
         c.data_ptr(), size["m"])
    return torch.equal(c, b @ a + 0.5)


#: glibc's mallopt parameters M_TRIM_THRESHOLD and M_MMAP_THRESHOLD, and the values set.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
#: mmap thresholds tried in turn (glibc before 2.35 refuses above 32 MiB), and the trim threshold
#: (the largest C int: mallopt takes an int).
_MMAP_BYTES, _TRIM_BYTES = (1 << 30, 32 << 20), (1 << 31) - 1


def keep_large_buffers() -> bool:
    """Once per process: let freed blocks up to 1 GiB (32 MiB on older glibc) stay in the heap
    for reuse (see the module doc); True when glibc took the settings."""
    with _lock:
        if "kept" not in _state:
            kept = False
            if os.environ.get("SNNSPIN_KEEP_BUFFERS", "1") != "0":
                try:
                    mallopt = ctypes.CDLL(None).mallopt
                    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
                    kept = any(mallopt(_M_MMAP_THRESHOLD, size) == 1 for size in _MMAP_BYTES)
                    kept = kept and mallopt(_M_TRIM_THRESHOLD, _TRIM_BYTES) == 1
                except (OSError, AttributeError):
                    kept = False
            _state["kept"] = kept
        return _state["kept"]


def ready(tensor: torch.Tensor) -> bool:
    """Whether ``run`` can take ``tensor``'s layers: native kernels, CPU float32/64, a GEMM to call."""
    if not (ENABLED and supports(tensor) and tensor.dtype in _gemm_addresses()):
        return False
    keep_large_buffers()
    return True


def _pointer(kernel: str, name: str, kind: str, value, dtype, shapes: dict):
    if kind == SCALAR:
        return float(value)
    if kind == INDEX:
        return int(value)
    if value is None:
        if name not in _OPTIONAL:
            raise ValueError(f"native {kernel}: {name} is required")
        return None
    expected = shapes[kind]
    if not isinstance(value, torch.Tensor) or value.device.type != "cpu" or value.dtype != dtype or \
            tuple(value.shape) != expected or \
            not (value[0] if kind == DRAWS else value).is_contiguous():  # draws: each step's block contiguous
        raise ValueError(f"native {kernel}: {name} must be a contiguous CPU {dtype} tensor of shape {expected}, "
                         f"got {getattr(value, 'dtype', type(value).__name__)} {tuple(getattr(value, 'shape', ()))}")
    return value.data_ptr()


_OPTIONAL = ("noise", "g_above", "g_sum")


def _layer_sizes(arguments):
    """(sizes, shapes, dtype) of a one-layer loop: (steps, B, N) from its [steps, B, N] sums."""
    state = arguments.get("syn", arguments.get("dsyn"))
    steps, batch, n = state.shape
    if "noise" in arguments:  # each step's draws are contiguous, a step stride apart
        noise = arguments["noise"]
        arguments["noise_stride"] = noise.stride(0) if noise is not None else 0
    shapes = {STEPS: (steps, batch, n), OUTPUTS: (steps + 1, batch, n), STATE: (batch, n), PAIR: (2, batch, n),
              SQUARE: (n, n),
              LAYER: (1, n), DRAWS: (steps, 1, 2, batch, n)}
    return (steps, batch, n), shapes, state.dtype


def _grid_sizes(kernel, arguments):
    """(sizes, shapes, dtype) of a diagonal loop: (D, L, B, N, P, depth, steps), with the grid checked."""
    depth, steps = arguments.pop("depth"), arguments.pop("steps")
    grid = arguments.get("xs", arguments.get("dsyn"))
    diagonals, layers, batch, n = grid.shape
    p = arguments["z"].shape[-1] - n
    if p < n or layers % depth or diagonals != steps + depth - 1:
        raise ValueError(f"native {kernel}: a grid of {diagonals} diagonals, {layers} layers of depth {depth}, "
                         f"{steps} steps and {p} signal columns for {n} neurons is not a valid grid")
    shapes = {GRID: (diagonals, layers, batch, n), INPUTS: (diagonals, layers, batch, p + n), ROWS: (layers, batch, n),
              WIDE: (layers, batch, p + n), WEIGHTS: (layers, n, p + n), NEURON: (layers, n),
              GRID_DRAWS: (diagonals, layers, 2, batch, n)}
    return (diagonals, layers, batch, n, p, depth, steps), shapes, grid.dtype


def run(kernel: str, **arguments) -> None:
    """Run the loop ``kernel`` (a key of ``SEQUENCES``) after checking each tensor's device,
    dtype, shape and contiguity; see ``sequence_body.h`` for what each reads and writes.
    One-layer loops (``*_seq``): ``noise`` (thermal draws ``[steps, 1, 2, B, N]`` or None) takes
    its step stride itself. Diagonal loops (``*_diag``) also take ``depth`` (layers per network)
    and ``steps`` (solver steps)."""
    arguments = dict(arguments)
    if kernel.endswith("_seq"):
        sizes, shapes, dtype = _layer_sizes(arguments)
    else:
        sizes, shapes, dtype = _grid_sizes(kernel, arguments)
    if max(sizes) >= 1 << 31:
        raise ValueError(f"native {kernel}: sizes {sizes} exceed the BLAS's 32-bit integers")
    table = SEQUENCES[kernel]
    if set(arguments) != {name for name, _ in table}:
        raise TypeError(f"native {kernel}: arguments {sorted(arguments)} differ from {sorted(n for n, _ in table)}")
    values = [_pointer(kernel, name, kind, arguments[name], dtype, shapes) for name, kind in table]
    library = _state.get("library") or _load()
    library[kernel, _DTYPES[dtype]](*sizes, _gemm_addresses()[dtype], *values)
