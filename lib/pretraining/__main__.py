"""``python -m pretraining``: see :mod:`pretraining.cli`."""

import sys

from .cli import main

sys.exit(main())
