"""snnspin: spintronic oscillator neurons for the snnTorch world (Plouet et al.)."""

from importlib import metadata

try:
    __version__ = metadata.version("snnspin")
except metadata.PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"
