"""One error family for everything a person can act on: what the CLI prints for it, and what it does
with anything else (a bug keeps its traceback)."""

import pytest

from cli_run import run
from core.cli import CliError, data_commands, main
from core.errors import NextPickError, UsageError, UserFileError, user_file


def test_every_user_facing_error_is_one_family_with_message_and_hint():
    from core.bundles import BundleError
    from core.data import SplitError
    from core.engine import UnknownUserError
    from core.importing import CsvImportError
    from core.runs import UnknownRunError
    from core.store import WorkspaceError

    for family in (CliError, WorkspaceError, CsvImportError, BundleError, SplitError, UnknownUserError,
                   UnknownRunError, UsageError, UserFileError):
        assert issubclass(family, NextPickError), family
    assert issubclass(UnknownUserError, KeyError) and issubclass(UnknownRunError, KeyError)
    assert issubclass(SplitError, ValueError) and issubclass(UsageError, ValueError)
    unknown = UnknownUserError("nobody", "shop.sqlite")
    assert str(unknown) == unknown.message and "unknown user 'nobody' in shop.sqlite" in unknown.message
    assert BundleError("corrupt").hint and NextPickError("plain").hint is None
    assert NextPickError("x", "do y").hint == "do y"


def test_an_os_error_on_a_named_file_becomes_a_message_naming_it(tmp_path):
    with pytest.raises(UserFileError) as error:
        with user_file(tmp_path / "missing.csv", "read"):
            open(tmp_path / "missing.csv")
    assert str(error.value).startswith(f"cannot read {tmp_path / 'missing.csv'}: No such file")
    assert isinstance(error.value.__cause__, FileNotFoundError) and error.value.hint


def test_a_missing_csv_is_one_line_and_exit_1(tmp_path, capsys):
    code, out, err = run(capsys, "import", tmp_path / "absent.csv", "--db", tmp_path / "ws.sqlite")
    assert code == 1 and out == ""
    assert err.startswith(f"nextpick import: {tmp_path / 'absent.csv'}: cannot read the file: No such file")
    assert "Traceback" not in err and not (tmp_path / "ws.sqlite").exists()


def test_an_unwritable_rejected_rows_path_names_it_and_says_what_to_do(tmp_path, capsys):
    source = tmp_path / "log.csv"
    source.write_text("user_id,item_id,timestamp\nu1,i1,1767225600\nu1,i2,soon\n")
    (tmp_path / "a-file").write_text("")
    target = tmp_path / "a-file" / "rejected.csv"  # its "folder" is a file
    code, _, err = run(capsys, "import", source, "--db", tmp_path / "ws.sqlite", "--rejected-out", target)
    assert code == 1 and "Traceback" not in err
    first, hint = err.splitlines()[-2:]  # after the progress lines of the import
    assert first.startswith(f"nextpick import: cannot write {target}: ")
    assert hint.startswith("hint: ") and "folder" in hint


def test_a_folder_given_as_workspace_is_a_message_with_a_hint(tmp_path, capsys):
    code, _, err = run(capsys, "stats", "--db", tmp_path)
    assert code == 1 and "Traceback" not in err
    assert err.splitlines() == [f"nextpick stats: cannot open the workspace {tmp_path}: Is a directory",
                                "hint: Choose a workspace file you are allowed to read and write."]


@pytest.mark.parametrize("bug", [ValueError("a bug"), OSError("a bug"), KeyError("a bug")])
def test_any_other_exception_is_a_bug_that_keeps_its_traceback(monkeypatch, tmp_path, capsys, bug):
    def broken(args, out):
        raise bug

    monkeypatch.setattr(data_commands, "cmd_stats", broken)
    (tmp_path / "ws.sqlite").write_bytes(b"")
    with pytest.raises(type(bug)):  # the console script lets Python print the traceback, exit status 1
        main(["stats", "--db", str(tmp_path / "ws.sqlite")])


class OutOfMemoryError(RuntimeError):
    """Named like torch's, which the CLI recognises by name without importing torch."""


@pytest.mark.parametrize("exhausted", [MemoryError(), OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")])
def test_running_out_of_memory_is_a_message_with_a_hint_not_a_traceback(monkeypatch, tmp_path, capsys, exhausted):
    def greedy(args, out):
        raise exhausted

    monkeypatch.setattr(data_commands, "cmd_stats", greedy)
    assert main(["stats", "--db", str(tmp_path / "ws.sqlite")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("nextpick stats: ran out of memory") and "Traceback" not in err
    assert "hint: Close other programs, or make the job smaller" in err
    assert str(exhausted) in err
