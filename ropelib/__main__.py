"""``python -m ropelib``: the same as the ``ropebook`` console script."""

import sys

from ropelib.publish.cli import main

sys.exit(main())
