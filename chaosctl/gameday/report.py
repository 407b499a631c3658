"""Reports people read: one self-contained HTML page per run (inline SVG chart, no scripts,
no network) plus the JSON journal, and a scorecard page across scenarios."""

from __future__ import annotations

import html
import json
import time
from collections.abc import Sequence
from pathlib import Path

from chaosctl.gameday.model import Marker, Sample, ScenarioResult

W, H = 960, 360
PAD_L, PAD_R, PAD_T, PAD_B = 56, 64, 24, 40
MARKER_COLORS = {"inject": "#d62728", "detect": "#ff7f0e", "remediate": "#1f77b4",
                 "recover": "#2ca02c", "abort": "#7f0000", "rollback": "#7f7f7f",
                 "step": "#9467bd", "replay": "#8c564b"}
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2rem;
color:#222;max-width:1040px}
h1{font-size:1.5rem;margin-bottom:.2rem} .sub{color:#666;margin-top:0}
table{border-collapse:collapse;margin:1rem 0} td,th{border:1px solid #ddd;padding:.35rem .6rem;
text-align:left} th{background:#f6f6f6}
.pass{color:#1a7f37;font-weight:600} .fail{color:#cf222e;font-weight:600}
.aborted{color:#9a6700;font-weight:600} svg{background:#fff;border:1px solid #eee}
.legend span{display:inline-block;margin-right:1rem} .sw{display:inline-block;width:12px;
height:12px;margin-right:4px;vertical-align:middle}
"""


def _x(t: float, t_max: float) -> float:
    return PAD_L + (W - PAD_L - PAD_R) * (t / t_max if t_max > 0 else 0)


def _y(frac: float) -> float:
    return PAD_T + (H - PAD_T - PAD_B) * (1 - max(0.0, min(1.0, frac)))


def timeline_svg(samples: Sequence[Sample], markers: Sequence[Marker]) -> str:
    """Success rate (left axis), p95 latency (right axis), open breakers shaded, markers."""
    t_max = max([s.t for s in samples] + [m.t for m in markers] + [1.0])
    lat_values = [s.p95_ms for s in samples if s.p95_ms is not None]
    lat_max = max(lat_values + [100.0]) * 1.1
    parts = [f'<svg id="timeline" xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
             f'viewBox="0 0 {W} {H}" role="img" aria-label="game-day timeline">']
    # breaker-open shading first, so the lines draw over it
    for s in samples:
        if s.breaker_open > 0:
            x0, x1 = _x(max(0.0, s.t - 1), t_max), _x(s.t, t_max)
            parts.append(f'<rect class="breaker-open" x="{x0:.1f}" y="{PAD_T}" '
                         f'width="{max(1.0, x1 - x0):.1f}" height="{H - PAD_T - PAD_B}" '
                         'fill="#fbe3e3"/>')
    # grid and axes
    for i in range(0, 5):
        y = _y(i / 4)
        parts.append(f'<line x1="{PAD_L}" y1="{y:.1f}" x2="{W - PAD_R}" y2="{y:.1f}" '
                     'stroke="#eee"/>')
        parts.append(f'<text x="{PAD_L - 6}" y="{y + 4:.1f}" font-size="11" '
                     f'text-anchor="end">{i * 25}%</text>')
        parts.append(f'<text x="{W - PAD_R + 6}" y="{y + 4:.1f}" font-size="11">'
                     f'{lat_max * i / 4:.0f} ms</text>')
    step = max(1, int(t_max // 10) or 1)
    for t in range(0, int(t_max) + 1, step):
        x = _x(t, t_max)
        parts.append(f'<text x="{x:.1f}" y="{H - PAD_B + 16}" font-size="11" '
                     f'text-anchor="middle">{t}s</text>')
    parts.append(f'<line x1="{PAD_L}" y1="{H - PAD_B}" x2="{W - PAD_R}" y2="{H - PAD_B}" '
                 'stroke="#999"/>')
    # series
    rate_pts = [(s.t, s.success_rate) for s in samples if s.success_rate is not None]
    lat_pts = [(s.t, s.p95_ms / lat_max) for s in samples if s.p95_ms is not None]
    for cls, pts, color in (("success-rate", rate_pts, "#2ca02c"),
                            ("latency-p95", lat_pts, "#1f77b4")):
        if pts:
            coords = " ".join(f"{_x(t, t_max):.1f},{_y(v):.1f}" for t, v in pts)
            parts.append(f'<polyline class="{cls}" fill="none" stroke="{color}" '
                         f'stroke-width="2" points="{coords}"/>')
    # markers
    for i, m in enumerate(markers):
        x = _x(m.t, t_max)
        color = MARKER_COLORS.get(m.kind, "#444")
        parts.append(f'<line class="marker marker-{m.kind}" x1="{x:.1f}" y1="{PAD_T}" '
                     f'x2="{x:.1f}" y2="{H - PAD_B}" stroke="{color}" stroke-dasharray="4 3"/>')
        parts.append(f'<text x="{x + 3:.1f}" y="{PAD_T + 12 + 12 * (i % 4)}" font-size="11" '
                     f'fill="{color}">{html.escape(m.kind)} {m.t:.1f}s</text>')
    parts.append("</svg>")
    return "".join(parts)


def _fmt(value: object, unit: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.2f}{unit}"
    return f"{value}{unit}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def scenario_html(result: ScenarioResult) -> str:
    r = result
    rows = [
        ("Outcome", f'<span class="{r.outcome}">{r.outcome.upper()}</span>'
                    + (f" — {html.escape(r.reason)}" if r.reason else "")),
        ("Time to detect", _fmt(r.mttd_s, " s")),
        ("Time to recover (from injection)", _fmt(r.mttr_s, " s")),
        ("Remediation (start to verified)", _fmt(r.remediation_s, " s")),
        ("Playbook fired", f"{html.escape(r.fired_playbook or '–')} (expected "
                           f"{html.escape(r.expected_playbook or 'none')}: "
                           f"{'right' if r.right_playbook else 'wrong'})"),
        ("Retry amplification", _fmt(r.retry_amplification, "x")),
        ("Load shed (429)", _fmt(r.load_shed)),
        ("Duplicate orders", _fmt(r.duplicates)),
        ("Outbox events lost", _fmt(r.lost_events)),
        ("Rolled back", "yes" if r.rolled_back else "no"),
        *_integrity_rows(r),
    ]
    phases = "".join(
        f"<tr><td>{name}</td><td>{p.requests}</td><td>{_pct(p.success_rate)}</td>"
        f"<td>{_fmt(p.p95_ms, ' ms')}</td><td>{_fmt(p.p99_ms, ' ms')}</td></tr>"
        for name, p in (("before", r.before), ("during", r.during), ("after", r.after))
    )
    objectives = "".join(
        f"<tr><td>{html.escape(o.name)}</td><td>{html.escape(o.target)}</td>"
        f"<td>{html.escape(o.actual)}</td>"
        f"<td class=\"{'pass' if o.passed else 'fail'}\">{'pass' if o.passed else 'fail'}</td></tr>"
        for o in r.objectives
    )
    legend = "".join(
        f'<span><i class="sw" style="background:{c}"></i>{k}</span>'
        for k, c in [("success rate", "#2ca02c"), ("p95 latency", "#1f77b4"),
                     ("breaker open", "#fbe3e3")] + list(MARKER_COLORS.items())
    )
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.started_at or time.time()))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Game day: {html.escape(r.scenario)}</title>
<style>{CSS}</style></head><body>
<h1>Game day: {html.escape(r.scenario)}</h1>
<p class="sub">{when} · mode {html.escape(r.mode)} · {r.duration_s:.1f} s</p>
<h2>Timeline</h2>
<div class="legend">{legend}</div>
{timeline_svg(r.samples, r.markers)}
<h2>Results</h2>
<table id="results">{''.join(f'<tr><th>{k}</th><td>{v}</td></tr>' for k, v in rows)}</table>
<h2>Before, during and after</h2>
<table id="phases"><tr><th>phase</th><th>requests</th><th>success</th><th>p95</th><th>p99</th>
</tr>{phases}</table>
<h2>Objectives</h2>
<table id="objectives"><tr><th>objective</th><th>target</th><th>actual</th><th>result</th></tr>
{objectives}</table>
</body></html>
"""


def _integrity_rows(r: ScenarioResult) -> list[tuple[str, str]]:
    """The databases' view (charges, reservations, pending) and the replayed keys."""
    rows: list[tuple[str, str]] = []
    i = r.integrity
    if i is None:
        rows.append(("Integrity (databases)", "not checked"))
    else:
        rows += [
            ("Live charges per idempotency key (max)",
             f"{i.max_charges_per_key} ({i.keys_over_charged} keys over 1; {i.charges} live "
             f"charges on {i.orders} orders)"),
            ("Live reservations per order (max)",
             f"{i.max_reservations_per_order} ({i.orders_over_reserved} orders over 1)"),
            ("Orders left pending after recovery", str(i.pending)),
            ("Live charges on orders that did not complete", str(i.charged_not_completed)),
            ("Completed orders without a live charge and reservation",
             str(i.completed_incomplete)),
        ]
        if i.examples:
            rows.append(("Integrity problems", "<br>".join(html.escape(e) for e in i.examples)))
        rows.append(("How charges and reservations were read",
                     "<br>".join(html.escape(n) for n in i.notes)))
    if r.replay is not None:
        p = r.replay
        rows.append((f"Replayed keys ({html.escape(p.mode)})",
                     f"{p.keys} sent, {p.answered} answered ({p.replayed} as replays), "
                     f"{p.new_orders} new orders, {p.unresolved} unresolved"
                     + ("".join(f"<br>{html.escape(e)}" for e in p.examples))))
    return rows


def _integrity_cell(r: ScenarioResult) -> str:
    i = r.integrity
    if i is None:
        return '<td class="fail">not checked</td>'
    bad = (i.keys_over_charged + i.orders_over_reserved + i.pending + i.charged_not_completed
           + i.completed_incomplete)
    text = (f"{i.max_charges_per_key} charge/key, {i.max_reservations_per_order} "
            f"reservation/order, {i.pending} pending, {i.charged_not_completed} charged-failed")
    return f'<td class="{"fail" if bad else "pass"}">{text}</td>'


def scorecard_html(results: Sequence[ScenarioResult]) -> str:
    rows = "".join(
        f"<tr><td><a href=\"{html.escape(Path(r.report_path).name) if r.report_path else '#'}\">"
        f"{html.escape(r.scenario)}</a></td>"
        f"<td class=\"{r.outcome}\">{r.outcome}</td><td>{_fmt(r.mttd_s, ' s')}</td>"
        f"<td>{_fmt(r.mttr_s, ' s')}</td><td>{html.escape(r.fired_playbook or '–')}</td>"
        f"<td>{_pct(r.during.success_rate)}</td><td>{_fmt(r.duplicates)}</td>"
        f"<td>{_fmt(r.lost_events)}</td>{_integrity_cell(r)}</tr>"
        for r in results
    )
    passed = sum(r.outcome == "pass" for r in results)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Game day scorecard</title>
<style>{CSS}</style></head><body>
<h1>Game day scorecard</h1><p class="sub">{passed} of {len(results)} scenarios passed</p>
<table id="scorecard"><tr><th>scenario</th><th>outcome</th><th>time to detect</th>
<th>time to recover</th><th>playbook fired</th><th>success during</th><th>duplicates</th>
<th>events lost</th><th>integrity</th></tr>{rows}</table></body></html>
"""


def write_run(result: ScenarioResult, directory: Path) -> Path:
    """Write `<scenario>-<time>.html` and `.json` (the journal with the timeline)."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(result.started_at or time.time()))
    base = directory / f"{result.scenario}-{stamp}"
    page = base.with_suffix(".html")
    result.report_path = str(page)
    base.with_suffix(".json").write_text(json.dumps(result.to_json(with_timeline=True), indent=2))
    page.write_text(scenario_html(result))
    return page


def write_scorecard(results: Sequence[ScenarioResult], directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    page = directory / "scorecard.html"
    page.write_text(scorecard_html(results))
    (directory / "scorecard.json").write_text(
        json.dumps([r.to_json() for r in results], indent=2))
    return page
