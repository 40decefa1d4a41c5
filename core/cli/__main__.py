"""``python -m core.cli``: the ``nextpick`` command, e.g. under ``torchrun --nproc_per_node 4 -m core.cli train``."""

import sys

from core.cli import main

if __name__ == "__main__":  # importing the module (as tests that walk core do) runs nothing
    sys.exit(main())
