"""``python -m invoiz_sandbox``: the ``invoiz-sandbox`` console script."""

import sys

from .cli import main

sys.exit(main())
