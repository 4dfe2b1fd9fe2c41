"""Report: terminal tables, figures and the run folder."""
