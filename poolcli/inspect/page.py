r"""The inspector page: one self-contained HTML file (styles, script and data inline; no network).

`inspector_html` fills the template in `assets/` with a payload from `data.build_payload`;
`write_inspector` does it for a file and writes the page atomically.

Every page (this one and the gallery) is made by `document`: each text it fills in is escaped for
HTML (file names that were not UTF-8 shown as ``\xNN``, as the terminal shows them), the data
travels as JSON in a non-executed script element, and a Content-Security-Policy lets only the
page's own script and style run (by their hashes): no inline event handler, no `javascript:` URL,
no network. Links to local files are made by `local_href`.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import re
from functools import cache
from importlib import resources
from pathlib import Path, PurePath
from urllib.parse import quote

from .. import io
from ..app.settings import PoolSettings
from ..core.modes import names, spoken
from ..errors import PoolError, printable
from ..version import __version__
from .data import Held, build_payload

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


def html_text(text: str) -> str:
    """`text` as HTML text or a quoted attribute value: markup characters escaped, control characters
    and bytes that were not UTF-8 (a file name's surrogate escapes) written as Python escapes.

    >>> print(html_text('<img src=x onerror="go()">' + chr(0xDCE9)))
    &lt;img src=x onerror=&quot;go()&quot;&gt;\\xe9
    """
    return html.escape(printable(text), quote=True)


def local_href(relative: str | PurePath) -> str:
    """A link to a file at `relative` (a relative path, '/'-separated): './' then each segment
    percent-encoded from the bytes the file system holds, so no name can be read as a scheme
    (`javascript:`), a fragment (#), a query (?) or an escape (%) of another file.

    >>> local_href("out/a#b?c%41 d.png"), local_href("javascript:go()"), local_href("../caf" + chr(0xDCE9) + ".png")
    ('./out/a%23b%3Fc%2541%20d.png', './javascript%3Ago%28%29', './../caf%E9.png')
    """
    parts = PurePath(relative).parts
    if not parts or PurePath(relative).is_absolute():
        raise ValueError(f"not a relative file path: {relative!r}")
    return "./" + "/".join(quote(os.fsencode(part), safe="") for part in parts)


def source_hash(text: str) -> str:
    """The CSP source that allows exactly this inline script or style element's text."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def content_policy(script: str, style: str) -> str:
    """The page's Content-Security-Policy: its one script and one style element (by hash), pictures
    from its own folder, nothing else (no inline handler or style attribute, no `javascript:` URL,
    no network, no form, no <base>)."""
    return (f"default-src 'none'; script-src {source_hash(script)}; style-src {source_hash(style)}; "
            "img-src 'self' file:; base-uri 'none'; form-action 'none'")


def document(name: str, data: object, **texts: str) -> str:
    """The page of assets/NAME.html with its script, style and `data` inline and each of `texts`
    escaped as HTML text (html_text), under its Content-Security-Policy."""
    script, style = asset(f"{name}.js"), asset(f"{name}.css")
    escaped = {key: html_text(value) for key, value in texts.items()}
    return fill(asset(f"{name}.html"), POLICY=html.escape(content_policy(script, style)), CSS=style, JS=script,
                DATA=script_json(data), **escaped)


def inspector_html(payload: dict) -> str:
    """The page for one payload."""
    exact, size = payload["exact"], payload["size"]
    notes = []
    if payload["overview"] is not None:
        notes.append(f"large input: exact values for rows {exact['y']}..{exact['y'] + exact['h'] - 1}, columns "
                     f"{exact['x']}..{exact['x'] + exact['w'] - 1} of {size[0]}x{size[1]}; the rest is a preview")
    if payload["kind"] == "image" and "A" in payload["channels"]:
        weighted = tuple(panel["mode"] for panel in payload["panels"] if panel["byAlpha"])
        mixing = spoken(names(mixes=True), "and")
        notes.append(f"colour weighted by alpha for {spoken(weighted, 'and')}, as pool writes it (alpha: premultiplied)"
                     if weighted else f"each channel pooled as it is, alpha too, as pool writes it ({mixing} weigh"
                     " colour by alpha unless alpha is straight)")
    if payload["channelCount"] > len(payload["channels"]):
        notes.append(f"{len(payload['channels'])} of {payload['channelCount']} channels embedded")
    return document("inspector", payload, VERSION=__version__, TITLE=payload["title"], NOTE="; ".join(notes))


def check_page_target(target: Path) -> None:
    if target.suffix.lower() not in PAGE_SUFFIXES:
        raise PoolError(f"{target}: the inspector writes an HTML page; name the output e.g. report.html")


def write_page(target: Path, text: str, *, overwrite: bool, inputs: tuple[Path, ...], durable: bool = True) -> Path:
    """`text` to `target` atomically (`durable=False`: not synced, for a batch that syncs at its end)."""
    with io.atomic_output(target, overwrite=overwrite, inputs=inputs, durable=durable) as file:
        file.write(text.encode("utf-8"))
    return target


def write_inspector(source: Path, target: Path, settings: PoolSettings, modes: list[str],
                    windows: list[tuple[int, ...]], *, channels: list[int] | None = None,
                    region: tuple[int, int, int, int] | None = None, overwrite: bool = False,
                    loaded: io.Loaded | None = None, held: Held | None = None, durable: bool = True) -> Path:
    """Pool `source` once per (mode, window) and write the inspector page to `target` (from `loaded`,
    the input as decoded in RGB order, where it is in memory already; from `held`, what pool wrote of
    it, where it is pooled already)."""
    check_page_target(target)
    io.check_output(target, overwrite=overwrite, inputs=(source,))
    payload = build_payload(source, settings, modes, windows, channels=channels, region=region, loaded=loaded,
                            held=held)
    return write_page(target, inspector_html(payload), overwrite=overwrite, inputs=(source,), durable=durable)
