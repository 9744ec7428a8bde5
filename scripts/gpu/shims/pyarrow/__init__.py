"""Minimal stand-in for `pyarrow` (see ../README.md): importable, unused on the GRPO path."""

__version__ = "0.0.0-ttrl-shim"


def __getattr__(name):
    """Any other name (used by TRL in annotations or off the GRPO path): a placeholder class."""
    if name.startswith("__"):
        raise AttributeError(name)
    return type(name, (), {})
