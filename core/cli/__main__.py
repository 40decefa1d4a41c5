"""``python -m core.cli``: the ``nextpick`` command, e.g. under ``torchrun --nproc_per_node 4 -m core.cli train``."""

import sys

from core.cli import main

sys.exit(main())
