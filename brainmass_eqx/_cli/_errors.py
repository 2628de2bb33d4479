"""One-line errors for the command line."""

from __future__ import annotations

import argparse
import sys

PROG = "brainmass-eqx"


class CLIError(Exception):
    """Bad input to the command line: printed as one line, exit status 2."""


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr (no usage dump), so
    that every bad input reads the same way: ``brainmass-eqx <command>: error: ...``."""

    def error(self, message: str):  # noqa: D401 (argparse's hook)
        hint = f" (see {self.prog} --help)"
        sys.stderr.write(f"{self.prog}: error: {message}{hint}\n")
        sys.exit(2)


def first_line(err: BaseException) -> str:
    """The message of ``err`` on one line (KeyError's repr quotes are removed)."""
    if isinstance(err, KeyError) and len(err.args) == 1 and isinstance(err.args[0], str):
        text = err.args[0]
    elif isinstance(err, OSError) and err.filename is not None and err.strerror:
        text = f"{err.strerror}: {err.filename}"
    else:
        text = str(err) or type(err).__name__
    return " ".join(text.split())
