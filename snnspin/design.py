"""Design figures of a config or a network (Plouet et al. Sec. IV-V).

The formulas themselves (τ > Δt, I·Δt ≈ 1, learning rate, frequency, energy) are pure
functions in ``snnspin.design_rules``; the points of Fig. 3c read from run folders are in
``snnspin.design_runs``. Both are re-exported here, so ``snnspin.design`` offers every
design name. This module measures a network (fan-in N, ⟨|W|⟩ over its unmasked weights)
and turns a config and its network into a report and plain-language warnings.
Units: time in ns, frequency in GHz, energy in pJ.
"""

from __future__ import annotations

import torch

from .config import SPIKING
from .connectivity import MaskedLinear
from .defaults import resolved_init_drive
from .design_rules import (  # noqa: F401  (re-exported: the public design names live in snnspin.design)
    DEVICE_FREQUENCY_GHZ,
    DRIVE_WARN,
    DRIVE_WINDOW,
    NEURON_FJ,
    PAPER_LR_OVER_RULE,
    REFERENCE_NS,
    SYNAPSE_FJ,
    cumulative_drive,
    energy_pj,
    fan_in,
    frequency_ghz,
    oscillation_ghz,
    recommended_lr,
    tau_for_oscillation_ns,
    tau_ns,
    timescale_ok,
)
from .design_runs import drive_accuracy_points  # noqa: F401  (re-exported)


def _hidden_maps(model):
    """(inter-layer maps after the input layer, intra-layer maps) of a layered model."""
    return list(model.w_ext)[1:], list(model.w_int)


def model_fan_in(model) -> float:
    """Measured mean fan-in N of hidden neurons: unmasked inputs per row, inter + intra,
    N = mean over inter maps (after the first) + mean over intra maps (eq. 9; a count).

    The first layer's input weights (from the pixel) are left out, as in the paper's N.

    >>> from snnspin.config import TrainConfig
    >>> from snnspin.models import build_model
    >>> model_fan_in(build_model(TrainConfig()))  # 0.5·32 + 0.5·32
    32.0
    """
    inter, intra = _hidden_maps(model)
    per_map = lambda maps: sum(float(m.mask.sum(1).float().mean()) for m in maps) / max(len(maps), 1)
    return (per_map(inter) if inter else 0.0) + per_map(intra)


def model_mean_abs_weight(model) -> float:
    """⟨|W|⟩ over the unmasked hidden weights (inter-layer after the first, and intra-layer):
    the mean of |W_ij| over every kept entry (dimensionless); 0 when there is none.

    >>> from snnspin.config import TrainConfig
    >>> from snnspin.models import build_model
    >>> model = build_model(TrainConfig(layers=2, width=4))
    >>> with torch.no_grad():
    ...     for m in list(model.w_ext) + list(model.w_int):
    ...         _ = m.weight.fill_(-0.25)
    >>> model_mean_abs_weight(model)
    0.25
    """
    inter, intra = _hidden_maps(model)
    weights = [m.weight[m.mask].detach().abs() for m in inter + intra if isinstance(m, MaskedLinear)]
    weights = [w for w in weights if w.numel()]
    return float(torch.cat(weights).mean()) if weights else 0.0


def report(config, model=None, alpha: float = 0.01, presentation_ns: float = REFERENCE_NS,
           f_range: tuple[float, float] = DEVICE_FREQUENCY_GHZ) -> dict:
    """All design figures of a config, with the measured weights of ``model`` if given.

    ``frequency_ghz`` is the paper's ω = 1/(α τ); ``oscillation_ghz`` the device's frequency
    f = 1/(2π α τ) (``design_rules.oscillation_ghz``); ``frequency_in_range``: whether f lies in
    ``f_range`` (GHz; default ``DEVICE_FREQUENCY_GHZ``, what spin-torque and spin-Hall
    oscillators reach).
    ``lr_over_rule``: lr0 over the paper's rule 0.01/(Δt S √N); the paper's own lr0 is about
    42 times its rule at its design point (``PAPER_LR_OVER_RULE``): with Adam, whose steps
    are normalised per weight, the rule orders learning rates across Δt (Fig. 3b) rather
    than setting their size.

    Without a model, ⟨|W|⟩ and N are those of a freshly initialised network, and
    ``drive_from_data`` is the ``init_drive`` training will set the drive to from the data (0:
    none; the uniform initialisation's ``cumulative_drive`` then applies). Keys end in
    their unit (``_ns``, ``_ghz``, ``_pj``); ``energy_pj`` is for ``presentation_ns`` and
    ``energy_pj_sequence`` for the 64 Δt of one sequence. ``recommended_lr`` is None when
    the hidden neurons have no inputs from other neurons (N = 0, e.g. width 1 or both
    densities 0), where 0.01/(Δt S √N) is undefined.

    >>> from snnspin.config import TrainConfig
    >>> r = report(TrainConfig())
    >>> r["neurons"], r["synapses"], round(r["energy_pj"], 1), round(r["frequency_ghz"], 2)
    (96, 2896, 38.6, 7.08)
    """
    from .models import build_model

    fresh = model is None
    model = model if model is not None else build_model(config)
    counts = model.counts()
    n_inputs = model_fan_in(model)
    mean_abs = model_mean_abs_weight(model)
    drive = cumulative_drive(config.gain, mean_abs, n_inputs, config.delta_t)
    lr = recommended_lr(config.delta_t, config.gain, n_inputs) if n_inputs > 0 else None
    sequence_ns = 64 * config.delta_t
    low, high = f_range
    if not 0 < low < high:
        raise ValueError(f"f_range must be two frequencies 0 < low < high in GHz, got {low:g}, {high:g}")
    oscillation = oscillation_ghz(config.tau, alpha)
    return {
        "tau_ns": config.tau,
        "delta_t_ns": config.delta_t,
        "tau_over_delta_t": config.tau / config.delta_t,
        "timescale_ok": timescale_ok(config.tau, config.delta_t),
        "alpha": alpha,
        "frequency_ghz": frequency_ghz(config.tau, alpha),
        "oscillation_ghz": oscillation,
        "frequency_range_ghz": [low, high],
        "frequency_in_range": low <= oscillation <= high,
        "fan_in": n_inputs,
        "mean_abs_weight": mean_abs,
        "cumulative_drive": drive,
        # a config that starts from init_drive has its drive set from the data at training, not by ⟨|W|⟩
        "drive_from_data": resolved_init_drive(config.model, config.init_drive, config.data) if fresh
        and config.model not in SPIKING else 0.0,
        "drive_window": list(DRIVE_WINDOW),
        "drive_in_window": DRIVE_WINDOW[0] <= drive <= DRIVE_WINDOW[1],
        "recommended_lr": lr,
        "lr0": config.lr0,
        "lr_over_rule": config.lr0 / lr if lr else None,
        "neurons": counts["neurons"],
        "synapses": counts["synapses"],
        "presentation_ns": presentation_ns,
        "energy_pj": energy_pj(counts["neurons"], counts["synapses"], presentation_ns),
        "sequence_ns": sequence_ns,
        "energy_pj_sequence": energy_pj(counts["neurons"], counts["synapses"], sequence_ns),
    }


def rule_warnings(config, model=None) -> list[str]:
    """Plain-language warnings for broken design rules: τ ≤ Δt (ns), a cumulative drive
    I·Δt outside ``DRIVE_WARN`` (not judged from the config alone under ``init_drive``, which
    sets it from the data), or no inputs from other neurons at all (N = 0).

    >>> from snnspin.config import TrainConfig
    >>> rule_warnings(TrainConfig(tau=0.5))[0]
    'τ = 0.5 ns is shorter than Δt = 1 ns: the neurons forget between input points (rule τ > Δt)'
    """
    r = report(config, model)
    out = []
    if not r["timescale_ok"]:
        out.append(f"τ = {config.tau:g} ns is shorter than Δt = {config.delta_t:g} ns: the neurons forget "
                   "between input points (rule τ > Δt)")
    if config.model not in SPIKING and r["fan_in"] == 0:
        out.append(f"the hidden neurons have no inputs from other neurons (fan-in N = 0 with width "
                   f"{config.width}, d_inter = {config.d_inter:g}, d_intra = {config.d_intra:g}): the cumulative "
                   "drive is 0 and the rule I·Δt ≈ 1 (eq. 11) cannot hold")
    elif config.model not in SPIKING and not r["drive_from_data"] and \
            not DRIVE_WARN[0] <= r["cumulative_drive"] <= DRIVE_WARN[1]:  # init_drive sets it from the data
        out.append(f"cumulative drive I·Δt = {r['cumulative_drive']:.3g} (S = {config.gain:g}, ⟨|W|⟩ = "
                   f"{r['mean_abs_weight']:.3g}, N = {r['fan_in']:.0f}, Δt = {config.delta_t:g} ns) is far "
                   "from 1 (rule I·Δt ≈ 1, eq. 11)")
    return out


def _frequency_verdict(r: dict) -> str:
    low, high = r["frequency_range_ghz"]
    if r["frequency_in_range"]:
        return f"within {low:g}-{high:g} GHz, what spin-torque and spin-Hall oscillators reach"
    side = "above" if r["oscillation_ghz"] > high else "below"
    return (f"{side} {low:g}-{high:g} GHz, what spin-torque and spin-Hall oscillators reach: choose τ in "
            f"{tau_for_oscillation_ns(high, r['alpha']):.3g}-{tau_for_oscillation_ns(low, r['alpha']):.3g} ns, "
            f"e.g. snnspin tune --f-range {low:g} {high:g}")


def _lr_note(r: dict) -> str:
    if r["lr_over_rule"] is None:
        return ""
    return (f", {r['lr_over_rule']:.0f}× the rule; the paper's own lr0 is {PAPER_LR_OVER_RULE:.0f}× it at its design "
            "point: with Adam the rule orders learning rates across Δt, it does not set their size")


def format_report(r: dict) -> str:
    """The report as aligned text lines (units as in the report: ns, GHz, pJ).

    >>> from snnspin.config import TrainConfig
    >>> print(format_report(report(TrainConfig())).splitlines()[3])
    device frequency           1.13 GHz at α = 0.01  (f = 1/(2π α τ); within 0.1-30 GHz, what spin-torque and spin-Hall oscillators reach; the paper's ω = 1/(α τ) = 7.08)
    """
    ok = lambda flag: "ok" if flag else "VIOLATED"
    lr = (f"{r['recommended_lr']:.3g}" if r["recommended_lr"] is not None
          else "undefined (fan-in N = 0: no inputs from other neurons)")
    lines = [
        f"relaxation time τ          {r['tau_ns']:.4g} ns",
        f"time between inputs Δt     {r['delta_t_ns']:.4g} ns",
        f"τ / Δt                     {r['tau_over_delta_t']:.3g}   (rule τ > Δt: {ok(r['timescale_ok'])})",
        f"device frequency           {r['oscillation_ghz']:.3g} GHz at α = {r['alpha']:g}  (f = 1/(2π α τ); "
        f"{_frequency_verdict(r)}; the paper's ω = 1/(α τ) = {r['frequency_ghz']:.3g})",
        f"fan-in N                   {r['fan_in']:.1f}",
        f"mean |W|                   {r['mean_abs_weight']:.4g}",
        f"cumulative drive I·Δt      {r['cumulative_drive']:.3g}   (recommended {r['drive_window'][0]:.2g}-"
        f"{r['drive_window'][1]:.2g}: {'in window' if r['drive_in_window'] else 'outside'})" if not
        r.get("drive_from_data") else
        f"cumulative drive I·Δt      {r['cumulative_drive']:.3g} at the uniform initialisation; training first scales "
        f"the input weights so that their drive per point on the data spreads {r['drive_from_data']:g} "
        "(init_drive; snnspin.init)",
        f"recommended learning rate  {lr}   (lr0 = {r['lr0']:g}{_lr_note(r)})",
        f"neurons                    {r['neurons']}",
        f"synapses                   {r['synapses']}",
        f"energy per inference       {r['energy_pj']:.1f} pJ for a {r['presentation_ns']:g} ns presentation "
        f"({r['energy_pj_sequence']:.1f} pJ for the {r['sequence_ns']:g} ns sequence)",
    ]
    return "\n".join(lines)
