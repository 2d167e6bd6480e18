"""snnspin."""
