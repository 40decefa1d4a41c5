"""``nextpick import`` never imports torch (4 CPU-seconds of the command, issue 14): checked in a
fresh interpreter, the command run through its ``main`` as a person runs it, caches included."""

import subprocess
import sys


def test_import_command_never_imports_torch(tmp_path):
    csv = tmp_path / "events.csv"
    csv.write_text("user_id,item_id,timestamp\n" + "".join(f"u{i % 7},i{i % 5},{1_600_000_000 + i}\n"
                                                            for i in range(60)))
    db = tmp_path / "shop.sqlite"
    script = (
        "import sys\n"
        "from core.cli import main\n"
        f"code = main(['import', {str(csv)!r}, '--db', {str(db)!r}])\n"
        "print('rc', code, 'torch', 'torch' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "rc 0 torch False"
    caches = sorted(path.name.split("-")[0] for path in (tmp_path / "shop.sqlite.cache").iterdir())
    assert caches == ["sequences", "successors", "users"]
