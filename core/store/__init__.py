"""The workspace: one SQLite file holding the behaviour log, its provenance and trained runs."""

from core.store.reads import EventArrays
from core.store.workspace import (
    ReadOnlyWorkspaceError,
    Workspace,
    WorkspaceBusyError,
    WorkspaceError,
    default_workspace_path,
)

__all__ = ["EventArrays", "ReadOnlyWorkspaceError", "Workspace", "WorkspaceBusyError", "WorkspaceError",
           "default_workspace_path"]
