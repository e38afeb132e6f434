"""The inspector page: one self-contained HTML file (styles, script and data inline; no network).

`inspector_html` fills the template in `assets/` with a payload from `data.build_payload`;
`write_inspector` does it for a file and writes the page atomically.
"""

from __future__ import annotations

import html
import json
import re
from functools import cache
from importlib import resources
from pathlib import Path

from .. import io
from ..errors import PoolError
from ..pipeline import PoolSettings
from ..version import __version__
from .data import build_payload

PAGE_SUFFIXES = (".html", ".htm")


@cache
def asset(name: str) -> str:
    """A file of poolcli/inspect/assets as text."""
    return resources.files(__package__).joinpath("assets", name).read_text(encoding="utf-8")


def script_json(value: object) -> str:
    """JSON that is safe inside a <script> element (no '</' can close it).

    >>> script_json({"a": "</script>"})
    '{"a": "<\\\\/script>"}'
    """
    return json.dumps(value, allow_nan=False).replace("</", "<\\/").replace("<!--", "<\\!--")


def fill(template: str, **parts: str) -> str:
    """Replace each {{NAME}} of `template` once, in one pass (a part may hold braces itself)."""
    return re.sub(r"\{\{([A-Z]+)\}\}", lambda match: parts[match.group(1)], template)


def inspector_html(payload: dict) -> str:
    """The page for one payload."""
    exact, size = payload["exact"], payload["size"]
    notes = []
    if payload["overview"] is not None:
        notes.append(f"large input: exact values for rows {exact['y']}..{exact['y'] + exact['h'] - 1}, columns "
                     f"{exact['x']}..{exact['x'] + exact['w'] - 1} of {size[0]}x{size[1]}; the rest is a preview")
    if payload["kind"] == "image" and "A" in payload["channels"]:
        notes.append("alpha is pooled as a channel of its own, as poolcli.pool does; poolcli pool weighs colour by"
                     " alpha for avg, sum, l2 and lp")
    if payload["channelCount"] > len(payload["channels"]):
        notes.append(f"{len(payload['channels'])} of {payload['channelCount']} channels embedded")
    return fill(asset("inspector.html"), VERSION=__version__, TITLE=html.escape(payload["title"]),
                NOTE=html.escape("; ".join(notes)), CSS=asset("inspector.css"), JS=asset("inspector.js"),
                DATA=script_json(payload))


def check_page_target(target: Path) -> None:
    if target.suffix.lower() not in PAGE_SUFFIXES:
        raise PoolError(f"{target}: the inspector writes an HTML page; name the output e.g. report.html")


def write_page(target: Path, text: str, *, overwrite: bool, inputs: tuple[Path, ...]) -> Path:
    with io.atomic_output(target, overwrite=overwrite, inputs=inputs) as file:
        file.write(text.encode("utf-8"))
    return target


def write_inspector(source: Path, target: Path, settings: PoolSettings, modes: list[str],
                    windows: list[tuple[int, ...]], *, channels: list[int] | None = None,
                    region: tuple[int, int, int, int] | None = None, overwrite: bool = False) -> Path:
    """Pool `source` once per (mode, window) and write the inspector page to `target`."""
    check_page_target(target)
    io.check_output(target, overwrite=overwrite, inputs=(source,))
    payload = build_payload(source, settings, modes, windows, channels=channels, region=region)
    return write_page(target, inspector_html(payload), overwrite=overwrite, inputs=(source,))
