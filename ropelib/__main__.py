"""``python -m ropelib``: the same as the ``ropebook`` console script."""

import sys

from ropelib.cli import main

sys.exit(main())
