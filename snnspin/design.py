"""Design rules for building the network in hardware (Plouet et al. Sec. IV-V).

- Time scales: the neurons' relaxation time must exceed the time between input points,
  τ > Δt.
- Cumulative drive (eq. 9-11): I·Δt ≈ 1 with I = S ⟨|W|⟩ √N, N the fan-in of a neuron
  (paper: N = d_inter·32 + d_intra·32 = 32).
- Learning rate: about a hundredth of the weight scale 1/(Δt S √N).
- Device: τ = 1/(α ω), α the Gilbert damping and ω the frequency in GHz as the paper
  writes it (no 2π): α = 0.01 and τ = 14.12 ns give ω ≈ 7.1 GHz.
- Energy: each neuron and synapse costs about 100 fJ and 10 fJ for a ~100 ns
  presentation (the paper's figures, after Ross et al. 2023): 96 neurons and 2896
  synapses ≈ 38.6 pJ per image. Costs scale linearly with presentation time.
"""

from __future__ import annotations

import math

import torch

from ._checks import check_positive
from .connectivity import MaskedLinear

#: The paper's per-device energies for a presentation of REFERENCE_NS (fJ).
NEURON_FJ = 100.0
SYNAPSE_FJ = 10.0
REFERENCE_NS = 100.0
#: Cumulative drive I·Δt: recommended window, and the bounds past which training warns.
DRIVE_WINDOW = (1 / 3, 3.0)
DRIVE_WARN = (0.1, 10.0)


def fan_in(width: int, d_inter: float, d_intra: float) -> float:
    """Mean number of inputs of a hidden neuron: N = d_inter·width + d_intra·width (eq. 9).

    >>> fan_in(32, 0.5, 0.5)
    32.0
    """
    return float(d_inter * width + d_intra * width)


def cumulative_drive(gain: float, mean_abs_weight: float, n_inputs: float, delta_t: float) -> float:
    """I·Δt with I = S ⟨|W|⟩ √N (eq. 9-11); dimensionless, ≈ 1 is best.

    >>> round(cumulative_drive(0.5, 0.3536, 32, 1.0), 3)
    1.0
    """
    check_positive("delta_t", delta_t)
    return gain * mean_abs_weight * math.sqrt(n_inputs) * delta_t


def recommended_lr(delta_t: float, gain: float, n_inputs: float) -> float:
    """A hundredth of the weight scale 1/(Δt S √N) (Sec. IV).

    >>> round(recommended_lr(1.0, 0.5, 32), 5)
    0.00354
    """
    check_positive("delta_t", delta_t)
    return 0.01 / (delta_t * gain * math.sqrt(n_inputs))


def timescale_ok(tau: float, delta_t: float) -> bool:
    """The first design condition: τ > Δt.

    >>> timescale_ok(14.12, 1.0), timescale_ok(0.5, 1.0)
    (True, False)
    """
    return tau > delta_t


def frequency_ghz(tau_ns: float, alpha: float = 0.01) -> float:
    """Device frequency ω = 1/(α τ) in GHz for τ in ns (the paper's convention, no 2π).

    >>> round(frequency_ghz(14.12, 0.01), 2)
    7.08
    """
    check_positive("tau", tau_ns)
    check_positive("alpha", alpha)
    return 1.0 / (alpha * tau_ns)


def tau_ns(frequency: float, alpha: float = 0.01) -> float:
    """Relaxation time τ = 1/(α ω) in ns for a frequency ω in GHz.

    >>> round(tau_ns(7.08, 0.01), 2)
    14.12
    """
    check_positive("frequency", frequency)
    check_positive("alpha", alpha)
    return 1.0 / (alpha * frequency)


def energy_pj(neurons: int, synapses: int, presentation_ns: float = REFERENCE_NS,
              neuron_fj: float = NEURON_FJ, synapse_fj: float = SYNAPSE_FJ) -> float:
    """Energy per inference in pJ: (neurons·E_n + synapses·E_s) · presentation / 100 ns.

    Defaults are the paper's per-device figures (100 fJ, 10 fJ for ~100 ns).

    >>> round(energy_pj(96, 2896), 2)
    38.56
    """
    check_positive("presentation_ns", presentation_ns)
    return (neurons * neuron_fj + synapses * synapse_fj) * presentation_ns / REFERENCE_NS / 1000.0


def _hidden_maps(model):
    """(inter-layer maps after the input layer, intra-layer maps) of a layered model."""
    return list(model.w_ext)[1:], list(model.w_int)


def model_fan_in(model) -> float:
    """Measured mean fan-in N of hidden neurons: unmasked inputs per row, inter + intra.

    The first layer's input weights (from the pixel) are left out, as in the paper's N.
    """
    inter, intra = _hidden_maps(model)
    per_map = lambda maps: sum(float(m.mask.sum(1).float().mean()) for m in maps) / max(len(maps), 1)
    return (per_map(inter) if inter else 0.0) + per_map(intra)


def model_mean_abs_weight(model) -> float:
    """⟨|W|⟩ over the unmasked hidden weights (inter-layer after the first, and intra-layer)."""
    inter, intra = _hidden_maps(model)
    weights = [m.weight[m.mask].detach().abs() for m in inter + intra if isinstance(m, MaskedLinear)]
    weights = [w for w in weights if w.numel()]
    return float(torch.cat(weights).mean()) if weights else 0.0


def report(config, model=None, alpha: float = 0.01, presentation_ns: float = REFERENCE_NS) -> dict:
    """All design figures of a config, with the measured weights of ``model`` if given.

    Without a model, ⟨|W|⟩ and N are those of a freshly initialised network.

    >>> from snnspin.config import TrainConfig
    >>> r = report(TrainConfig())
    >>> r["neurons"], r["synapses"], round(r["energy_pj"], 1), round(r["frequency_ghz"], 2)
    (96, 2896, 38.6, 7.08)
    """
    from .models import build_model

    model = model if model is not None else build_model(config)
    counts = model.counts()
    n_inputs = model_fan_in(model)
    mean_abs = model_mean_abs_weight(model)
    drive = cumulative_drive(config.gain, mean_abs, n_inputs, config.delta_t)
    sequence_ns = 64 * config.delta_t
    return {
        "tau_ns": config.tau,
        "delta_t_ns": config.delta_t,
        "tau_over_delta_t": config.tau / config.delta_t,
        "timescale_ok": timescale_ok(config.tau, config.delta_t),
        "alpha": alpha,
        "frequency_ghz": frequency_ghz(config.tau, alpha),
        "fan_in": n_inputs,
        "mean_abs_weight": mean_abs,
        "cumulative_drive": drive,
        "drive_window": list(DRIVE_WINDOW),
        "drive_in_window": DRIVE_WINDOW[0] <= drive <= DRIVE_WINDOW[1],
        "recommended_lr": recommended_lr(config.delta_t, config.gain, n_inputs),
        "lr0": config.lr0,
        "neurons": counts["neurons"],
        "synapses": counts["synapses"],
        "presentation_ns": presentation_ns,
        "energy_pj": energy_pj(counts["neurons"], counts["synapses"], presentation_ns),
        "sequence_ns": sequence_ns,
        "energy_pj_sequence": energy_pj(counts["neurons"], counts["synapses"], sequence_ns),
    }


def rule_warnings(config, model=None) -> list[str]:
    """Plain-language warnings for broken design rules (τ < Δt, drive far from 1).

    >>> from snnspin.config import TrainConfig
    >>> rule_warnings(TrainConfig(tau=0.5))[0]
    'τ = 0.5 ns is shorter than Δt = 1 ns: the neurons forget between input points (rule τ > Δt)'
    """
    r = report(config, model)
    out = []
    if not r["timescale_ok"]:
        out.append(f"τ = {config.tau:g} ns is shorter than Δt = {config.delta_t:g} ns: the neurons forget "
                   "between input points (rule τ > Δt)")
    if config.model != "lif" and not DRIVE_WARN[0] <= r["cumulative_drive"] <= DRIVE_WARN[1]:
        out.append(f"cumulative drive I·Δt = {r['cumulative_drive']:.3g} (S = {config.gain:g}, ⟨|W|⟩ = "
                   f"{r['mean_abs_weight']:.3g}, N = {r['fan_in']:.0f}, Δt = {config.delta_t:g} ns) is far "
                   "from 1 (rule I·Δt ≈ 1, eq. 11)")
    return out


def format_report(r: dict) -> str:
    """The report as aligned text lines."""
    ok = lambda flag: "ok" if flag else "VIOLATED"
    lines = [
        f"relaxation time τ          {r['tau_ns']:.4g} ns",
        f"time between inputs Δt     {r['delta_t_ns']:.4g} ns",
        f"τ / Δt                     {r['tau_over_delta_t']:.3g}   (rule τ > Δt: {ok(r['timescale_ok'])})",
        f"device frequency           {r['frequency_ghz']:.3g} GHz at α = {r['alpha']:g}  (τ = 1/(α ω))",
        f"fan-in N                   {r['fan_in']:.1f}",
        f"mean |W|                   {r['mean_abs_weight']:.4g}",
        f"cumulative drive I·Δt      {r['cumulative_drive']:.3g}   (recommended {r['drive_window'][0]:.2g}-"
        f"{r['drive_window'][1]:.2g}: {'in window' if r['drive_in_window'] else 'outside'})",
        f"recommended learning rate  {r['recommended_lr']:.3g}   (lr0 = {r['lr0']:g})",
        f"neurons                    {r['neurons']}",
        f"synapses                   {r['synapses']}",
        f"energy per inference       {r['energy_pj']:.1f} pJ for a {r['presentation_ns']:g} ns presentation "
        f"({r['energy_pj_sequence']:.1f} pJ for the {r['sequence_ns']:g} ns sequence)",
    ]
    return "\n".join(lines)


def drive_accuracy_points(run_dirs) -> list[dict]:
    """One point per run folder for Fig. 3c: median over seeds of the cumulative drive
    (from the trained weights) and of the final evaluation accuracy, with τ and Δt.
    """
    import statistics
    from pathlib import Path

    from .io import read_json
    from .training import trained_models

    points = []
    for run in map(Path, run_dirs):
        config, models = trained_models(run)
        drives, accuracies = [], []
        for seed, model in models:
            drives.append(report(config, model)["cumulative_drive"])
            accuracies.append(read_json(run / f"seed_{seed}" / "history.json")[-1]["eval_acc"])
        if drives:
            points.append({
                "run": str(run), "tau": config.tau, "delta_t": config.delta_t,
                "drive": statistics.median(drives), "accuracy": statistics.median(accuracies),
                "seeds": len(drives),
            })
    return points
