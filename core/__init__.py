"""NextPick engine: store, import, sequence models, recommendation and evaluation. Never imports Qt."""

__version__ = "0.1.0"
