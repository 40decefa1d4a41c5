import pkgutil
import subprocess
import sys

import core


def test_no_core_module_imports_qt():
    """Import every core module in a fresh interpreter; none may pull in PySide6 or pyqtgraph."""
    modules = sorted(m.name for m in pkgutil.walk_packages(core.__path__, "core."))
    assert "core.engine" in modules and "core.ranker" in modules
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'pyqtgraph', 'shiboken6'))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"core imported GUI modules: {result.stdout.strip()}"
