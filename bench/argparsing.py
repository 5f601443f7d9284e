"""The one argument parser of every ``python -m bench…`` command.

Two changes to :class:`argparse.ArgumentParser`, so that a typo is caught and explained:

- no abbreviations (``allow_abbrev=False``): ``--codec jpeg-420`` is an unknown option, not a
  silent ``--codecs``, and adding an option can never change what an old command line means;
- an unknown option after a sub-command is reported with *that* sub-command's usage (argparse
  prints the top-level usage, which does not list the option the user was reaching for), with the
  closest known options suggested.
"""

from __future__ import annotations

import argparse
import difflib
import math
from collections.abc import Sequence
from typing import Any


class ArgumentParser(argparse.ArgumentParser):
    """:class:`argparse.ArgumentParser` without abbreviations, whose sub-commands report their own
    unknown options (see the module docstring); sub-parsers are of this class too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def parse_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                   namespace: argparse.Namespace | None = None) -> argparse.Namespace:
        """As argparse's, but unknown arguments are an error of the innermost sub-command given."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            parser = self._chosen(parsed)
            parser.error(f"unrecognized arguments: {' '.join(extras)}{parser._suggestion(extras)}")
        return parsed

    def _chosen(self, parsed: argparse.Namespace) -> ArgumentParser:
        """The sub-command's parser that ``parsed`` went through (recursively), else this one."""
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction) and action.dest is not argparse.SUPPRESS:
                sub = action.choices.get(getattr(parsed, action.dest, None) or "")
                if isinstance(sub, ArgumentParser):
                    return sub._chosen(parsed)
        return self

    def _suggestion(self, extras: list[str]) -> str:
        """' (did you mean --x?)' for the first unknown option close to a known one, else ''."""
        known = [s for action in self._actions for s in action.option_strings if s.startswith("--")]
        for extra in extras:
            if extra.startswith("--"):
                close = difflib.get_close_matches(extra.split("=", 1)[0], known, n=3, cutoff=0.75)
                if close:
                    return f" (did you mean {' or '.join(close)}?)"
        return ""


def finite_fraction(text: str) -> float:
    """An ``argparse`` type: a finite number ≥ 0 (a threshold); NaN or infinity would make every
    comparison with it false, so a real regression would pass."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be a finite number ≥ 0")
    return value
