"""NextPick Studio: the desktop app over ``core.engine.Engine``.

Everything here is presentation: pages read the engine through ``studio.context`` and run its
long jobs through ``studio.workers``; no recommendation logic lives in this package.
"""

from pathlib import Path

RESOURCES_DIR = Path(__file__).resolve().parents[1] / "resources"
"""Style sheet and icons, beside the package in a checkout, an editable install and a wheel
(which installs ``resources/`` as a top-level data package; pyproject.toml lists its files)."""
