"""Stand-in (see ../README.md)."""


def __getattr__(name):
    """Any other name (used by TRL in annotations or off the GRPO path): a placeholder class."""
    if name.startswith("__"):
        raise AttributeError(name)
    return type(name, (), {})
