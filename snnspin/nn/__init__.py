"""snnTorch-style stateful neuron layers built on ``snnspin.functional``."""

from .alif import ALIF, ALIFState
from .ctrnn import CTRNN
from .highpass import HighPass, HighPassState
from .leaky import Leaky
from .oscillator import Oscillator
from .reset import detach_hidden, reset
from .stateful import RelaxingNeuron, StatefulLayer

__all__ = ["ALIF", "ALIFState", "CTRNN", "HighPass", "HighPassState", "Leaky", "Oscillator", "RelaxingNeuron",
           "StatefulLayer", "detach_hidden", "reset"]
