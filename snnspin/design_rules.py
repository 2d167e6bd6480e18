"""The design formulas of Plouet et al. (Sec. IV-V) as pure functions of numbers.

No model, no file: ``snnspin.design`` applies them to a config or a network, and
``snnspin.design_runs`` to run folders. Units: time in ns, frequency in GHz, energy in
fJ per device and pJ per inference.

- Time scales: τ > Δt.
- Cumulative drive (eq. 9-11): I·Δt ≈ 1 with I = S ⟨|W|⟩ √N, N the fan-in of a neuron
  (paper: N = d_inter·32 + d_intra·32 = 32).
- Learning rate: a hundredth of the weight scale 1/(Δt S √N).
- Device: τ = 1/(α ω), α the Gilbert damping and ω the frequency in GHz as the paper
  writes it (no 2π): α = 0.01 and τ = 14.12 ns give ω ≈ 7.1 GHz.
- Energy: each neuron and synapse costs about 100 fJ and 10 fJ for a ~100 ns
  presentation (after Ross et al. 2023): 96 neurons and 2896 synapses ≈ 38.6 pJ per image.
"""

from __future__ import annotations

import math

from ._checks import check_positive

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
    """I·Δt with I = S ⟨|W|⟩ √N (eq. 9-11), Δt in ns; dimensionless, ≈ 1 is best.

    N = 0 (a neuron with no inputs from other neurons) gives 0.

    >>> round(cumulative_drive(0.5, 0.3536, 32, 1.0), 3)
    1.0
    """
    check_positive("delta_t", delta_t)
    return gain * mean_abs_weight * math.sqrt(n_inputs) * delta_t


def recommended_lr(delta_t: float, gain: float, n_inputs: float) -> float:
    """A hundredth of the weight scale: 0.01 / (Δt S √N), Δt in ns (Sec. IV).

    The scale is undefined without inputs from other neurons (N = 0): that is refused.

    >>> round(recommended_lr(1.0, 0.5, 32), 5)
    0.00354
    >>> recommended_lr(1.0, 0.5, 0)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: no recommended learning rate for a fan-in N = 0 (no connections between neurons): ...
    """
    check_positive("delta_t", delta_t)
    check_positive("gain", gain)
    if not n_inputs > 0:
        raise ValueError(f"no recommended learning rate for a fan-in N = {n_inputs:g} (no connections between "
                         "neurons): the weight scale 1/(Δt S √N) is undefined")
    return 0.01 / (delta_t * gain * math.sqrt(n_inputs))


def timescale_ok(tau: float, delta_t: float) -> bool:
    """The first design condition: τ > Δt (both in ns).

    >>> timescale_ok(14.12, 1.0), timescale_ok(0.5, 1.0)
    (True, False)
    """
    return tau > delta_t


def _over_alpha(name: str, value: float, alpha: float) -> float:
    """1/(α·value): τ = 1/(α ω) read either way (ω in GHz ↔ τ in ns)."""
    check_positive(name, value)
    check_positive("alpha", alpha)
    return 1.0 / (alpha * value)


def frequency_ghz(tau_ns: float, alpha: float = 0.01) -> float:
    """Device frequency ω = 1/(α τ) in GHz for τ in ns (the paper's convention, no 2π).

    >>> round(frequency_ghz(14.12, 0.01), 2)
    7.08
    """
    return _over_alpha("tau", tau_ns, alpha)


def oscillation_ghz(tau_ns: float, alpha: float = 0.01) -> float:
    """The device's oscillation frequency f = 1/(2π α τ) in GHz for τ in ns.

    The damping rate of an oscillator's power is γ = 1/τ = α ω with ω = 2π f its angular
    frequency (the Gilbert damping of the stochastic auto-oscillator model; Slavin &
    Tiberkevich, IEEE Trans. Magn. 45, 1875 (2009)). The paper writes τ = 1/(α ω) with ω in
    GHz (``frequency_ghz``), without the 2π: read with it, its ω ≈ 7.1 GHz gives τ = 2.25 ns,
    the reading under which its design point trains (``snnspin.presets.PAPER_2PI``). This
    is the frequency compared with what devices reach (``DEVICE_FREQUENCY_GHZ``).

    >>> round(oscillation_ghz(14.12 / (2 * math.pi), 0.01), 2)
    7.08
    """
    return _over_alpha("tau", tau_ns, alpha) / (2 * math.pi)


def tau_for_oscillation_ns(frequency_ghz_: float, alpha: float = 0.01) -> float:
    """τ = 1/(2π α f) in ns of a device oscillating at f GHz (the inverse of ``oscillation_ghz``).

    >>> round(tau_for_oscillation_ns(7.08, 0.01), 3)
    2.248
    """
    return _over_alpha("frequency", frequency_ghz_, alpha) / (2 * math.pi)


#: Frequencies (GHz) that spin-torque and spin-Hall nano-oscillators reach: from about 0.1 GHz
#: (vortex oscillators) to a few tens of GHz (uniform-mode and spin-Hall oscillators), as
#: reviewed by T. Chen et al., "Spin-torque and spin-Hall nano-oscillators", Proc. IEEE 104,
#: 1919 (2016); voltage tuning over GHz is shown by Choi et al., Nat. Commun. 13, 3783 (2022),
#: the paper's ref. [35]. A rough range for a first check; ``snnspin design --f-range`` sets another.
DEVICE_FREQUENCY_GHZ = (0.1, 30.0)

#: The paper's design point, for comparing a learning rate with the rule: lr0 over 0.01/(Δt S √N)
#: at τ = 14.12 ns, Δt = 1 ns, S = 0.5, N = 32 (0.149 / 0.00354 ≈ 42).
PAPER_LR_OVER_RULE = 0.149 / (0.01 / (1.0 * 0.5 * 32 ** 0.5))


def tau_ns(frequency: float, alpha: float = 0.01) -> float:
    """Relaxation time τ = 1/(α ω) in ns for a frequency ω in GHz.

    >>> round(tau_ns(7.08, 0.01), 2)
    14.12
    """
    return _over_alpha("frequency", frequency, alpha)


def energy_pj(neurons: int, synapses: int, presentation_ns: float = REFERENCE_NS,
              neuron_fj: float = NEURON_FJ, synapse_fj: float = SYNAPSE_FJ) -> float:
    """Energy per inference in pJ: (neurons·E_n + synapses·E_s) · presentation / 100 ns,
    E_n and E_s in fJ for a 100 ns presentation.

    Defaults are the paper's per-device figures (100 fJ, 10 fJ for ~100 ns).

    >>> round(energy_pj(96, 2896), 2)
    38.56
    """
    check_positive("presentation_ns", presentation_ns)
    return (neurons * neuron_fj + synapses * synapse_fj) * presentation_ns / REFERENCE_NS / 1000.0
