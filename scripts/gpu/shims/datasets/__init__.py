"""Minimal stand-in for `datasets` (see ../README.md): a list of dict rows as a torch Dataset."""

import torch.utils.data

__version__ = "0.0.0-ttrl-shim"


class Dataset(torch.utils.data.Dataset):
    cache_files: list = []  # an in-memory dataset (TRL's telemetry asks; never sent offline)

    def __init__(self, rows=None):
        self._rows = list(rows or [])

    @classmethod
    def from_list(cls, rows):
        return cls(rows)

    def __len__(self):
        return len(self._rows)

    def __getitem__(self, i):
        if isinstance(i, str):
            return [r[i] for r in self._rows]
        return self._rows[i]

    def __getitems__(self, idx):
        return [self._rows[i] for i in idx]

    @property
    def column_names(self):
        return list(self._rows[0].keys()) if self._rows else []


class IterableDataset(torch.utils.data.IterableDataset):
    pass


class DatasetDict(dict):
    pass


class IterableDatasetDict(dict):
    pass


def __getattr__(name):
    """Any other name (used by TRL in annotations or off the GRPO path): a placeholder class."""
    if name.startswith("__"):
        raise AttributeError(name)
    return type(name, (), {})
