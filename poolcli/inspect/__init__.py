"""The interactive inspector: self-contained HTML pages that show which input cells each pooled value
came from (`page`), the data they show, computed by the engine (`data`), and the gallery of a batch
run (`gallery`). Layer 5, beside batch: it reads engine, io, viz, core and app, never cli.
"""

from .data import build_payload, check_region
from .page import PAGE_SUFFIXES, inspector_html, write_inspector

__all__ = ["PAGE_SUFFIXES", "build_payload", "check_region", "inspector_html", "write_inspector"]
