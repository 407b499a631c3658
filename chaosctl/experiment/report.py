"""The experiment's report: one self-contained HTML page (inline SVG, no scripts, no network).
Per scenario: a grouped bar chart for each of its metrics (one bar per configuration, ours,
with the paper's figure marked on it), then the table: ours, the paper's, the difference."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path

from chaosctl.experiment.paper import METRICS, TABLE_ROWS
from chaosctl.experiment.scenarios import BASELINE, SCENARIOS
from chaosctl.results.experiment import Cell, ExperimentResult

PANEL_W, PANEL_H = 300, 200
PAD_L, PAD_R, PAD_T, PAD_B = 52, 10, 28, 30
OURS, PAPER = "#1f77b4", "#d62728"
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2rem;
color:#222;max-width:1100px}
h1{font-size:1.5rem;margin-bottom:.2rem} .sub{color:#666;margin-top:0}
table{border-collapse:collapse;margin:1rem 0} td,th{border:1px solid #ddd;padding:.3rem .5rem;
text-align:right} th{background:#f6f6f6} td.m,th.m{text-align:left}
.paper{color:#666} .worse{color:#cf222e} .better{color:#1a7f37} .err{color:#9a6700}
svg.chart{background:#fff;border:1px solid #eee;margin:0 .5rem .5rem 0}
.legend span{display:inline-block;margin-right:1rem} .sw{display:inline-block;width:12px;
height:12px;margin-right:4px;vertical-align:middle}
"""


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "–"
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "ms":
        return f"{value:,.0f} ms"
    if unit == "s":
        return f"{value:.1f} s"
    return f"{value:.1f} %"


def fmt_diff(value: float | None, unit: str) -> str:
    if value is None:
        return "–"
    sign = "+" if value > 0 else ""
    if unit == "x":
        return f"{sign}{value:.2f}x"
    if unit == "ms":
        return f"{sign}{value:,.0f} ms"
    return f"{sign}{value:.1f} {'pp' if unit == '%' else unit}"


def cells_of(result: ExperimentResult, scenario: str) -> list[Cell]:
    order = [c.name for c in result.configs]
    found = [c for c in result.cells if c.scenario == scenario]
    return sorted(found, key=lambda c: order.index(c.config) if c.config in order else 99)


def _tick(value: float) -> str:
    if value >= 10_000:
        return f"{value / 1000:.0f}k"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.2g}" if value < 10 else f"{value:.0f}"


def metric_svg(scenario: str, metric: str, cells: Sequence[Cell]) -> str:
    """One panel: a bar per configuration (ours) and the paper's figure as a red tick."""
    spec = METRICS[metric]
    rows = [(c.config, next((t for t in c.table if t.metric == metric), None)) for c in cells]
    values = [v for _, t in rows if t for v in (t.ours, t.paper) if v is not None]
    top = max(values + [1e-9]) * 1.15 or 1.0
    if spec.unit == "%":
        top = max(top, 10.0)
    inner_w, inner_h = PANEL_W - PAD_L - PAD_R, PANEL_H - PAD_T - PAD_B
    slot = inner_w / max(1, len(rows))
    bar_w = slot * 0.55
    parts = [f'<svg class="chart" data-scenario="{scenario}" data-metric="{metric}" '
             f'xmlns="http://www.w3.org/2000/svg" width="{PANEL_W}" height="{PANEL_H}" '
             f'viewBox="0 0 {PANEL_W} {PANEL_H}" role="img" '
             f'aria-label="{html.escape(spec.label)} by configuration">',
             f'<text x="{PAD_L}" y="16" font-size="12" font-weight="600">'
             f'{html.escape(spec.label)} ({spec.unit})</text>']
    for i in range(5):
        y = PAD_T + inner_h * (1 - i / 4)
        parts.append(f'<line x1="{PAD_L}" y1="{y:.1f}" x2="{PANEL_W - PAD_R}" y2="{y:.1f}" '
                     'stroke="#eee"/>')
        parts.append(f'<text x="{PAD_L - 4}" y="{y + 4:.1f}" font-size="10" '
                     f'text-anchor="end">{_tick(top * i / 4)}</text>')
    for i, (config, row) in enumerate(rows):
        x = PAD_L + slot * i + (slot - bar_w) / 2
        parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{PANEL_H - PAD_B + 14}" '
                     f'font-size="11" text-anchor="middle">{html.escape(config)}</text>')
        if row is None:
            continue
        if row.ours is not None:
            h = inner_h * max(0.0, row.ours) / top
            parts.append(f'<rect class="bar ours" data-config="{config}" x="{x:.1f}" '
                         f'y="{PAD_T + inner_h - h:.1f}" width="{bar_w:.1f}" '
                         f'height="{max(h, 0.5):.1f}" fill="{OURS}">'
                         f'<title>{config}: {fmt(row.ours, spec.unit)}</title></rect>')
        else:
            parts.append(f'<text class="no-value" x="{x + bar_w / 2:.1f}" '
                         f'y="{PAD_T + inner_h - 4:.1f}" font-size="10" '
                         'text-anchor="middle">–</text>')
        if row.paper is not None:
            y = PAD_T + inner_h * (1 - max(0.0, row.paper) / top)
            parts.append(f'<line class="paper-mark" data-config="{config}" '
                         f'x1="{x - 4:.1f}" y1="{y:.1f}" x2="{x + bar_w + 4:.1f}" '
                         f'y2="{y:.1f}" stroke="{PAPER}" stroke-width="3">'
                         f'<title>paper {config}: {fmt(row.paper, spec.unit)}</title></line>')
    parts.append(f'<line x1="{PAD_L}" y1="{PAD_T + inner_h}" x2="{PANEL_W - PAD_R}" '
                 f'y2="{PAD_T + inner_h}" stroke="#999"/></svg>')
    return "".join(parts)


def _direction(metric: str, diff: float | None) -> str:
    if diff is None or diff == 0:
        return ""
    better = diff < 0 if METRICS[metric].lower_is_better else diff > 0
    return "better" if better else "worse"


def table_html(scenario: str, cells: Sequence[Cell]) -> str:
    head = "".join(f"<th>{html.escape(c.config)}</th>" for c in cells)
    body = []
    for metric in TABLE_ROWS.get(scenario, ()):
        spec = METRICS[metric]
        tds = []
        for c in cells:
            row = next((t for t in c.table if t.metric == metric), None)
            if c.status == "error" or row is None:
                tds.append(f'<td class="err" title="{html.escape(c.reason or "")}">error</td>')
                continue
            paper = (f'<br><span class="paper">paper {fmt(row.paper, spec.unit)}</span>'
                     f'<br><span class="{_direction(metric, row.diff)}">'
                     f'{fmt_diff(row.diff, spec.unit)}</span>' if row.paper is not None else "")
            tds.append(f"<td>{fmt(row.ours, spec.unit)}{paper}</td>")
        body.append(f'<tr><td class="m">{html.escape(spec.label)}</td>{"".join(tds)}</tr>')
    return (f'<table class="results" data-scenario="{scenario}"><tr><th>metric</th>{head}</tr>'
            + "".join(body) + "</table>")


def render(result: ExperimentResult) -> str:
    r = result
    opts = r.options
    title = "chaosctl experiment: the seed study's tables on this machine"
    status = ("interrupted (Ctrl-C): the cells measured so far" if r.interrupted
              else "complete")
    out = [f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
           f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
           f"<h1>{html.escape(title)}</h1>",
           f'<p class="sub">{html.escape(r.machine)}; {opts.rps:g} orders/s, fault phases of '
           f"{opts.duration_s:g} s, baseline {opts.baseline_s:g} s, recovery watched up to "
           f"{opts.recover_max_s:g} s (hold {opts.hold_s:g} s), {opts.repeat} run(s) per cell"
           f"{', --quick' if opts.quick else ''}. {r.completed} of {r.planned} cells, "
           f"{status}; stack {'restored to' if r.restored else 'NOT restored to'} its normal "
           "configuration.</p>",
           f'<p class="legend"><span><span class="sw" style="background:{OURS}"></span>ours'
           f'</span><span><span class="sw" style="background:{PAPER}"></span>the paper'
           "</span></p>",
           "<h2>Configurations</h2><table><tr><th class=\"m\">name</th><th class=\"m\">"
           "patterns</th><th class=\"m\">how</th></tr>"]
    for c in r.configs:
        out.append(f'<tr><td class="m">{c.name}</td><td class="m">{html.escape(c.label)}</td>'
                   f'<td class="m">{html.escape(c.note)}</td></tr>')
    out.append("</table>")
    for scenario in [BASELINE, *(s.name for s in r.scenarios)]:
        cells = cells_of(r, scenario)
        if not cells:
            continue
        desc = ("each configuration without a fault" if scenario == BASELINE
                else SCENARIOS[scenario].description)
        out.append(f'<section id="{scenario}"><h2>{scenario}</h2>'
                   f'<p class="sub">{html.escape(desc)}</p>')
        for metric in TABLE_ROWS.get(scenario, ()):
            out.append(metric_svg(scenario, metric, cells))
        out.append(table_html(scenario, cells) + "</section>")
    out.append("<h2>What the metrics mean</h2><table>")
    for m in METRICS.values():
        out.append(f'<tr><td class="m">{html.escape(m.label)} ({m.unit})</td>'
                   f'<td class="m">{html.escape(m.meaning)}</td></tr>')
    out.append("</table></body></html>")
    return "\n".join(out)


def write(result: ExperimentResult, directory: Path) -> Path:
    """experiment-<time>.html and .json in `directory`; sets result.report_path."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time_stamp(result.started_at)
    page = directory / f"experiment-{stamp}.html"
    result.report_path = str(page)
    page.write_text(render(result), encoding="utf-8")
    (directory / f"experiment-{stamp}.json").write_text(
        json.dumps(result.model_dump(mode="json"), indent=1), encoding="utf-8")
    return page


def time_stamp(at: float) -> str:
    import time

    return time.strftime("%Y%m%d-%H%M%S", time.localtime(at))
