"""How a training step scales with width and sequence length: the fused path against nn.RNN.

One full training step (forward, NLL, backward, clipping, Adam), 3 layers, for each row of
``ROWS`` (width 32 to 1024 at T = 64; T = 64 to 784 at widths 32 and 128) and both presets
(``paper``: the paper's τ = 14.12 ns and S = 0.5; ``tuned``: the tuned spintronic preset).
Inputs are uniform in 0..16 (raw pixels), batch 120 (32 at width 1024), float32, CPU.
``torch.nn.RNN`` (tanh, same layers and width, same readout) is timed in the same process,
interleaved with the fused path, and every ratio is taken against it. Times are medians of
``--repeats`` steps after one warm-up step; the process time (CPU seconds of this process)
is reported, which on a shared machine is steadier than the wall clock and equals it on a
quiet one with one thread. Memory: the peak resident memory (VmHWM) of a fresh process
that imports torch, builds one contender and runs two of its steps; the table's header gives
the same for a process that only imports and builds nothing (the baseline). Subnormal floats
are flushed to zero for both contenders (``torch.set_flush_denormal``), as the fused kernels do
anyway: without it, nn.RNN's gradients decaying over long sequences run into subnormal
arithmetic, and its steps at T >= 256 took 4-10 times longer in one run, which says nothing
about either method. nn.RNN is initialised from seed 0.

    python benchmarks/scaling.py                    # all rows, both presets: ~10 min on 1 core
    python benchmarks/scaling.py --rows 32x64 128x64 --presets tuned --repeats 3
    python benchmarks/speed.py --scaling            # the same

Writes ``benchmarks/results/scaling.md`` (table), ``.csv`` and ``.png`` (time per step against
width and against T, ours and nn.RNN).
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from speed import RNNNet, make_step  # noqa: E402 (the benchmark's own helpers)

from snnspin.config import TrainConfig  # noqa: E402
from snnspin.models import build_model  # noqa: E402
from snnspin.presets import preset_config  # noqa: E402

RESULTS = Path(__file__).parent / "results"
#: (width, T) rows; batch 120, 32 at width 1024 (as in issue #20's table).
ROWS = [(32, 64), (128, 64), (256, 64), (512, 64), (1024, 64), (32, 256), (32, 784), (128, 256), (128, 784)]
PRESETS = ("paper", "tuned")


def batch_for(width: int) -> int:
    return 32 if width >= 1024 else 120


def network_config(preset: str, width: int) -> TrainConfig:
    base = TrainConfig() if preset == "paper" else preset_config("spintronic", "tuned")
    return base.replace(width=width, engine="fused")


def inputs(width: int, steps: int):
    batch = batch_for(width)
    generator = torch.Generator().manual_seed(0)
    return torch.rand(steps, batch, 1, generator=generator) * 16, torch.randint(0, 10, (batch,), generator=generator)


#: Segments (input points) of the checkpointed contender, timed on rows with T >= CHECKPOINT_FROM.
CHECKPOINT_EVERY, CHECKPOINT_FROM = 64, 256


def contender(name: str, preset: str, width: int):
    if name == "fused":
        return make_step(build_model(network_config(preset, width)))
    if name == "fused, checkpointed":
        return make_step(build_model(network_config(preset, width).replace(checkpoint_every=CHECKPOINT_EVERY)))
    torch.manual_seed(0)  # nn.RNN's initialisation draws from the global generator: the same one every run
    return make_step(RNNNet(width))


def names_for(steps: int) -> list[str]:
    return ["fused", "nn.RNN"] + (["fused, checkpointed"] if steps >= CHECKPOINT_FROM else [])


def peak_rss_mib(name: str, preset: str, width: int, steps: int) -> float:
    """Peak resident memory (MiB) of a fresh process running two steps of contender ``name``."""
    command = [sys.executable, __file__, "--peak-rss", name, preset, str(width), str(steps)]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return float(result.stdout.strip().splitlines()[-1])


def measure_row(preset: str, width: int, steps: int, repeats: int) -> dict:
    batch = batch_for(width)
    data, targets = inputs(width, steps)
    contenders = {name: contender(name, preset, width) for name in names_for(steps)}
    for step in contenders.values():  # warm-up (and the native kernels' first call)
        step(data, targets)
    memory = {name: peak_rss_mib(name, preset, width, steps) for name in contenders}
    times = {name: [] for name in contenders}
    for _ in range(repeats):  # interleaved
        for name, step in contenders.items():
            start = time.process_time()
            step(data, targets)
            times[name].append(time.process_time() - start)
    fused, rnn = (statistics.median(times[k]) for k in ("fused", "nn.RNN"))
    checkpointed = statistics.median(times["fused, checkpointed"]) if "fused, checkpointed" in times else None
    return {"preset": preset, "width": width, "T": steps, "batch": batch, "fused_ms": fused * 1e3,
            "rnn_ms": rnn * 1e3, "ratio": fused / rnn, "fused_mib": memory["fused"], "rnn_mib": memory["nn.RNN"],
            "checkpointed_ms": checkpointed * 1e3 if checkpointed else None,
            "checkpointed_mib": memory.get("fused, checkpointed")}


def _mib(value) -> str:
    return "—" if value is None else f"{value:.0f}"


def _ms(value) -> str:
    return "—" if value is None else f"{value:.1f}"


def write_table(rows: list[dict], out: Path, command: str, repeats: int, baseline: float) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "scaling.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = ["# Scaling: one training step against width and sequence length", "",
             f"`{command}` on {platform.machine()} ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads), "
             f"torch {torch.__version__}: CPU time of one training step, median of {repeats} interleaved repeats; "
             f"memory: peak resident memory of a fresh process running two steps (baseline, imports only: "
             f"{baseline:.0f} MiB). 3 layers, float32, inputs "
             "uniform in 0..16; `benchmarks/scaling.py`'s docstring has the protocol. A GPU is not measured.", "",
             f"Checkpointed: the fused path with `checkpoint_every={CHECKPOINT_EVERY}` (T >= {CHECKPOINT_FROM}).", "",
             "| preset | width | T | batch | fused (ms) | nn.RNN (ms) | fused / nn.RNN | fused peak RSS (MiB) | "
             "nn.RNN peak RSS (MiB) | checkpointed (ms) | checkpointed peak RSS (MiB) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['preset']} | {r['width']} | {r['T']} | {r['batch']} | {r['fused_ms']:.1f} | "
                     f"{r['rnn_ms']:.1f} | {r['ratio']:.2f} | {_mib(r['fused_mib'])} | {_mib(r['rnn_mib'])} | "
                     f"{_ms(r['checkpointed_ms'])} | {_mib(r['checkpointed_mib'])} |")
    lines += ["", "![time per training step against width and T](scaling.png)"]
    (out / "scaling.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    figure(rows, out / "scaling.png")


def figure(rows: list[dict], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.8), layout="constrained")
    FigureCanvasAgg(fig)
    panels = [("width", lambda r: r["T"] == 64, "width (neurons per layer), T = 64"),
              ("T", lambda r: r["width"] == 32, "sequence length T, width 32"),
              ("T", lambda r: r["width"] == 128, "sequence length T, width 128")]
    for i, (key, keep, label) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        for preset, style in zip(PRESETS, ("o-", "s--")):
            part = sorted((r for r in rows if r["preset"] == preset and keep(r)), key=lambda r: r[key])
            if part:
                ax.plot([r[key] for r in part], [r["fused_ms"] for r in part], style, label=f"fused ({preset})")
        reference = {r[key]: r["rnn_ms"] for r in sorted(rows, key=lambda r: r["preset"]) if keep(r)}
        if reference:
            ax.plot(sorted(reference), [reference[k] for k in sorted(reference)], "k^:", label="nn.RNN")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("ms per training step")
        ax.grid(alpha=0.3, which="both")
        if ax.lines:
            ax.legend(fontsize=8)
    fig.savefig(path, dpi=110)


def parse_row(text: str) -> tuple[int, int]:
    try:
        width, steps = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a row is WIDTHxT (e.g. 128x784), got {text!r}") from None
    if width < 1 or steps < 1:
        raise argparse.ArgumentTypeError(f"width and T must be >= 1, got {text!r}")
    return width, steps


def _own_peak_mib() -> float:
    """This process's peak resident memory (MiB): VmHWM, which belongs to its own address space.
    (ru_maxrss would not do: Linux carries the parent's peak over a fork and exec.)"""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # elsewhere (KiB on Linux, bytes on macOS)


def _peak_rss_child(name: str, preset: str, width: str, steps: str) -> None:
    torch.set_num_threads(1)
    if name != "none":  # none: the baseline, imports only
        data, targets = inputs(int(width), int(steps))
        step = contender(name, preset, int(width))
        for _ in range(2):
            step(data, targets)
    print(_own_peak_mib())


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--peak-rss"]:
        return _peak_rss_child(*argv[1:])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", nargs="+", type=parse_row, default=ROWS, metavar="WIDTHxT")
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), choices=PRESETS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    # subnormal floats: the fused kernels flush them; nn.RNN's BPTT gradients, decaying over long
    # sequences, would otherwise run into subnormal arithmetic (4-10 times slower steps at T >= 256)
    torch.set_flush_denormal(True)
    rows = []
    for preset in args.presets:
        for width, steps in args.rows:
            row = measure_row(preset, width, steps, args.repeats)
            print(f"{preset:6s} width {width:5d} T {steps:4d}: fused {row['fused_ms']:8.1f} ms, nn.RNN "
                  f"{row['rnn_ms']:8.1f} ms, ratio {row['ratio']:.2f}, memory {_mib(row['fused_mib'])} / "
                  f"{_mib(row['rnn_mib'])} MiB", flush=True)
            rows.append(row)
    write_table(rows, Path(args.out), " ".join(["python benchmarks/scaling.py", *argv]), args.repeats,
                peak_rss_mib("none", "paper", 1, 1))
    print(f"written to {Path(args.out) / 'scaling.md'}")


if __name__ == "__main__":
    main()
