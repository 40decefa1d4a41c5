"""Dialogs of the studio: importing files and explaining errors."""
