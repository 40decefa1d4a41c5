"""Reusable widgets: charts (pyqtgraph) and the per-user views of the Explore page."""
