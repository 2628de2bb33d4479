"""The command line: ``python -m brainmass_eqx`` (installed as ``brainmass-eqx``).

Run ``python -m brainmass_eqx --help`` for the commands (``models``, ``datasets``,
``simulate``, ``fit``, ``demo``).
"""

import sys

from ._cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
