"""Self-contained HTML reports (demo page, later model and batch reports).

:class:`ReportPage` collects headings, text, rows of pictures and tables and writes ONE html
file with every picture embedded (base64 JPEG or PNG): no network, no side files.
"""

from __future__ import annotations

from reliqa.reports.html import Picture, ReportPage, image_data_uri

__all__ = ["Picture", "ReportPage", "image_data_uri"]
