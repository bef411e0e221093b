"""A self-contained report.html: the results table, the skip summary and the plots inline (no external assets), for a
CI job to publish as it is."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from .report import (
    COLUMNS,
    VERDICT_COLOURS,
    VERDICTS,
    CaseResult,
    group_results,
    report_header,
    row_cells,
    skip_line,
    skip_reasons,
)

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5rem; color: #222; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.1rem; margin-top: 1.6rem; }
table { border-collapse: collapse; font-size: 0.85rem; }
th, td { border: 1px solid #ddd; padding: 0.2rem 0.4rem; text-align: right; }
th { background: #f4f4f4; } td:nth-child(-n+3) { text-align: left; }
td.verdict { color: white; font-weight: 600; text-align: center; }
.summary span { display: inline-block; color: white; padding: 0.15rem 0.6rem; margin-right: 0.4rem;
                border-radius: 0.3rem; font-weight: 600; }
.meta { color: #555; font-size: 0.85rem; } .note { color: #555; font-size: 0.8rem; white-space: normal; }
img { max-width: 100%; border: 1px solid #eee; margin-top: 0.5rem; }
"""


def _image(path: Path | None, alt: str) -> str:
    if path is None or not Path(path).is_file():
        return ""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def html_report(results, meta: dict | None = None, plots: dict[str, Path] | None = None,
                title: str = "ImageNet accuracy report") -> str:
    """The whole page as one string; plots maps a caption to a PNG file, embedded as a data URI."""
    results: list[CaseResult] = list(results)
    e = html.escape
    counts = {v: sum(r.verdict == v for r in results) for v in VERDICTS}
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{e(title)}</title>",
             f"<style>{_STYLE}</style></head><body><h1>{e(title)}</h1>", "<div class='summary'>"]
    parts += [f"<span style='background:{VERDICT_COLOURS[v]}'>{counts[v]} {v}</span>" for v in VERDICTS if counts[v]]
    parts.append("</div><ul class='meta'>")
    parts += [f"<li>{e(key)}: {e(str(value))}</li>" for key, value in report_header(meta).items()]
    parts.append("</ul>")
    for group, members in group_results(r for r in results if r.verdict != "skip"):
        parts.append(f"<h2>{e(group)}</h2><table><tr>" + "".join(f"<th>{e(c)}</th>" for c in COLUMNS) + "</tr>")
        for result in members:
            cells = row_cells(result)
            colour = VERDICT_COLOURS[result.verdict]
            parts.append("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in cells[:-1])
                         + f"<td class='verdict' style='background:{colour}'>{e(result.verdict)}</td></tr>")
            if result.note:
                parts.append(f"<tr><td class='note' colspan='{len(COLUMNS)}'>{e(result.note)}</td></tr>")
        parts.append("</table>")
    reasons = skip_reasons(results)
    if reasons:
        parts.append("<h2>Skipped</h2><ul>")
        for reason, cases in reasons:
            parts.append(f"<li>{e(skip_line(reason, cases))}<details><summary>each case</summary><ul>")
            parts += [f"<li><code>{e(r.case_id)}</code>: {e(r.note)}</li>" for r in cases]
            parts.append("</ul></details></li>")
        parts.append("</ul>")
    for caption, path in (plots or {}).items():
        parts.append(f"<h2>{e(caption)}</h2>{_image(path, caption)}")
    parts.append("</body></html>\n")
    return "\n".join(parts)
