"""Reports of finished runs: the comparison tables and the figures. Reads results; never trains."""
from .report import FIGURES, write_report
from .tables import aggregate, markdown_tables, write_csv

__all__ = ["FIGURES", "aggregate", "markdown_tables", "write_csv", "write_report"]
