"""The workspace: one SQLite file holding the behaviour log, its provenance and trained runs."""

from core.store.workspace import (
    EventArrays,
    ReadOnlyWorkspaceError,
    Workspace,
    WorkspaceBusyError,
    WorkspaceError,
    default_workspace_path,
)

__all__ = ["EventArrays", "ReadOnlyWorkspaceError", "Workspace", "WorkspaceBusyError", "WorkspaceError",
           "default_workspace_path"]
