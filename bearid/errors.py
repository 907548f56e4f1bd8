"""The base of every error BearID reports to a user as a message rather than a traceback."""


class BearIDError(Exception):
    """Bad input or a refused operation: the message says what and where."""


def require(extra: str, what: str, *modules: str) -> None:
    """Refuse `what` when one of `modules` is not installed, naming the extra that brings it
    (`pip install 'bearid[EXTRA]'`), before anything starts that would fail half-way."""
    import importlib.util
    import sys

    for name in modules:
        try:
            missing = sys.modules.get(name, ...) is None or importlib.util.find_spec(name) is None
        except (ImportError, ValueError):
            missing = True
        if missing:
            raise BearIDError(f"{what} needs {name}, which is not installed here: pip install 'bearid[{extra}]'")


def require_in_process() -> None:
    """A model run in this process (score, label, book with --bundle or --champion) needs the
    [serve] extra's runtimes: checked before bearid.serving.offline is imported."""
    require("serve", "a model run in this process (--bundle, --champion)", "onnxruntime", "sklearn")
