"""Import check run by ttrl before any work: prints one JSON line {"missing": [...], "versions": {...}}."""

import importlib
import json

from . import REQUIRED_MODULES


def main() -> None:
    missing: list[str] = []
    versions: dict[str, str] = {}
    for name in REQUIRED_MODULES:
        try:
            mod = importlib.import_module(name)
            versions[name] = str(getattr(mod, "__version__", "?"))
        except Exception as e:  # a broken install counts as missing, with its reason
            missing.append(f"{name} ({type(e).__name__}: {e})" if not isinstance(e, ModuleNotFoundError) else name)
    print(json.dumps({"missing": missing, "versions": versions}), flush=True)


if __name__ == "__main__":
    main()
