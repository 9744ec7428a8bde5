"""Minimal stand-in for `pandas` (see ../README.md); any use fails clearly."""

__version__ = "0.0.0-ttrl-shim"


class DataFrame:
    def __init__(self, *a, **kw):
        raise RuntimeError("pandas is not installed (ttrl GPU check shim); set log_completions=False")


def __getattr__(name):
    """Any other name (used by TRL in annotations or off the GRPO path): a placeholder class."""
    if name.startswith("__"):
        raise AttributeError(name)
    return type(name, (), {})
