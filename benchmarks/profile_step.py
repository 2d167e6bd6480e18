"""Where a fused training step spends its time: matrix products, pointwise kernels, the rest.

Profiles (cProfile, process time) ``--repeats`` training steps of the fused path per row
(width × T, the scaling rows by default) and splits their time into

- **matmul**: every matrix product (``snnspin.fused._Products``: ``baddbmm``/``addmm`` forward,
  ``bmm``/``mm`` and ``baddbmm_``/``addmm_`` backward, layer 0's drive and its signal gradient over
  all steps; the readout's ``linear``);
- **kernels**: the pointwise updates (the native C kernels through ``snnspin.native.call``);
- **C loops**: the whole-sequence C loops (``snnspin.native.sequences.run``), which on CPU run
  the step-by-step products and kernels together in one call (cProfile cannot split them);
  the products over all steps (input drives, weight gradients) stay under matmul;
- **rest**: everything else (allocation, copies, the readout, autograd, Adam, Python).

    python benchmarks/profile_step.py                      # the scaling rows, tuned preset
    python benchmarks/profile_step.py --rows 128x64 --preset paper

Writes ``benchmarks/results/profile.md``.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import re
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from scaling import PRESETS, RESULTS, ROWS, contender, inputs, parse_row  # noqa: E402

MATMUL = {"baddbmm", "bmm", "baddbmm_", "addmm", "addmm_", "matmul", "mm", "tensordot", "linear"}


def split(stats: pstats.Stats) -> dict:
    """Seconds per category from a profile's own-time entries (a C extension's time is its caller's)."""
    out = {"matmul": 0.0, "kernels": 0.0, "loops": 0.0}
    for (filename, _, name), (_, _, own, _, _) in stats.stats.items():
        # "<built-in method torch.bmm>", "<method 'baddbmm_' of 'torch._C.TensorBase' objects>"
        match = re.match(r"<(?:built-in method|method) '?([\w.]+)'?", name)
        bare = match.group(1).split(".")[-1] if match else name
        if bare in MATMUL and filename == "~" or filename.endswith("fused_layerwise.py") and name == "_layer_grads":
            out["matmul"] += own  # (_layer_grads: three products written with @, which cProfile does not list)
        elif filename.endswith("native/__init__.py") and name == "call":
            out["kernels"] += own
        elif filename.endswith("native/sequences.py") and name == "run":
            out["loops"] += own
    return out


def profile_row(preset: str, width: int, steps: int, repeats: int) -> dict:
    data, targets = inputs(width, steps)
    step = contender("fused", preset, width)
    step(data, targets)  # warm-up
    profiler = cProfile.Profile(time.process_time)
    start = time.process_time()
    profiler.enable()
    for _ in range(repeats):
        step(data, targets)
    profiler.disable()
    total = time.process_time() - start
    parts = split(pstats.Stats(profiler))
    return {"preset": preset, "width": width, "T": steps, "step_ms": total / repeats * 1e3,
            **{k: v / total * 100 for k, v in parts.items()}, "rest": (total - sum(parts.values())) / total * 100}


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", nargs="+", type=parse_row, default=ROWS, metavar="WIDTHxT")
    parser.add_argument("--preset", default="tuned", choices=PRESETS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(RESULTS / "profile.md"))
    args = parser.parse_args(argv)
    lines = ["# Where a fused training step spends its time", "",
             f"`python benchmarks/profile_step.py {' '.join(argv)}`: cProfile over {args.repeats} steps "
             f"({torch.get_num_threads()} torch threads, process time), {args.preset} preset, 3 layers, batch as in "
             "`scaling.md`. matmul: the matrix products called from Python (input drives, weight and input "
             "gradients over all steps; the per-step products when the C loops do not run); kernels: the "
             "native pointwise updates called from Python; C loops: the whole-sequence C loops (per-step "
             "products and kernels in one call each); rest: allocation, copies, readout, autograd, Adam, "
             "Python. Profiling adds a little to every call.", "",
             "| width | T | ms per step (profiled) | matmul % | kernels % | C loops % | rest % |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for width, steps in args.rows:
        r = profile_row(args.preset, width, steps, args.repeats)
        line = (f"| {width} | {steps} | {r['step_ms']:.1f} | {r['matmul']:.0f} | {r['kernels']:.0f} | "
                f"{r['loops']:.0f} | {r['rest']:.0f} |")
        print(line, flush=True)
        lines.append(line)
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
