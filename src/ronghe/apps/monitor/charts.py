"""Server-side SVG charts (no JavaScript library, nothing from a CDN): one chart per watch key
with the volume per time bucket as bars and the negative share as a line, alerts as red marks.
Used by the dashboard (fetched as SVG) and by the static report."""

from __future__ import annotations

from datetime import datetime, timezone
from html import escape

W, H = 640, 200
PAD_L, PAD_R, PAD_T, PAD_B = 44, 44, 24, 26


def key_chart(title: str, points: list[dict], alerts: list[dict] | None = None,
              bucket_s: int = 3600) -> str:
    """``points``: [{ts, n, share}] per bucket of ``bucket_s`` seconds, in time order (empty
    buckets may be missing); ``alerts``: [{id, ts}] drawn in the bucket holding ``ts``."""
    pw, ph = W - PAD_L - PAD_R, H - PAD_T - PAD_B
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {W} {H}" '
             f'width="{W}" height="{H}" role="img" aria-label="{escape(title)}">',
             f'<text x="{PAD_L}" y="15" class="title">{escape(title)}</text>']
    if not points:
        parts.append(f'<text x="{W / 2}" y="{H / 2}" text-anchor="middle" class="empty">'
                     'no items yet</text></svg>')
        return "".join(parts)
    t0, t1 = points[0]["ts"], points[-1]["ts"]
    slots = int((t1 - t0) // bucket_s) + 1
    step = pw / slots
    top = max(p["n"] for p in points)

    def x(ts):  # the middle of the bucket holding ts
        return PAD_L + ((ts - t0) // bucket_s) * step + step / 2

    for p in points:  # volume bars (left axis)
        h = p["n"] / top * ph
        parts.append(f'<rect class="vol" x="{x(p["ts"]) - step * 0.4:.1f}" '
                     f'y="{PAD_T + ph - h:.1f}" width="{max(step * 0.8, 1):.1f}" '
                     f'height="{h:.1f}"><title>{p["n"]} items</title></rect>')
    line = " ".join(f'{x(p["ts"]):.1f},{PAD_T + ph - p["share"] * ph:.1f}' for p in points)
    parts.append(f'<polyline class="share" fill="none" points="{line}"/>')
    for p in points:
        parts.append(f'<circle class="dot" cx="{x(p["ts"]):.1f}" '
                     f'cy="{PAD_T + ph - p["share"] * ph:.1f}" r="2.2">'
                     f'<title>{_fmt(p["ts"])}: {p["share"]:.0%} negative of {p["n"]}</title>'
                     '</circle>')
    for a in alerts or []:
        ts = a.get("ts")
        if ts is None or not t0 <= ts < t1 + bucket_s:
            continue
        parts.append(f'<line class="alert" x1="{x(ts):.1f}" x2="{x(ts):.1f}" y1="{PAD_T}" '
                     f'y2="{PAD_T + ph}"><title>alert {a.get("id")}</title></line>')
    # axes: volume on the left, share on the right, first and last bucket below
    parts += [f'<line class="axis" x1="{PAD_L}" x2="{PAD_L + pw}" y1="{PAD_T + ph}" '
              f'y2="{PAD_T + ph}"/>',
              f'<text x="{PAD_L - 4}" y="{PAD_T + 8}" text-anchor="end" class="vt">{top}</text>',
              f'<text x="{PAD_L - 4}" y="{PAD_T + ph}" text-anchor="end" class="vt">0</text>',
              f'<text x="{PAD_L + pw + 4}" y="{PAD_T + 8}" class="st">100%</text>',
              f'<text x="{PAD_L + pw + 4}" y="{PAD_T + ph / 2 + 4}" class="st">50%</text>',
              f'<text x="{PAD_L}" y="{H - 8}" class="tt">{_fmt(t0)}</text>',
              f'<text x="{PAD_L + pw}" y="{H - 8}" text-anchor="end" class="tt">{_fmt(t1 + bucket_s)}</text>',
              "</svg>"]
    return "".join(parts)


def _fmt(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M")


STYLE = """
.chart { background: #fff; border: 1px solid #ddd; border-radius: 6px; max-width: 100%; height: auto; }
.chart .title { font: 600 13px system-ui, sans-serif; fill: #222; }
.chart .empty { font: 13px system-ui, sans-serif; fill: #888; }
.chart .vol { fill: #c9d7ea; }
.chart .share { stroke: #c0392b; stroke-width: 2; }
.chart .dot { fill: #c0392b; }
.chart .alert { stroke: #e67e22; stroke-width: 2; stroke-dasharray: 4 3; }
.chart .axis { stroke: #999; }
.chart .vt, .chart .tt { font: 11px system-ui, sans-serif; fill: #5a7aa6; }
.chart .st { font: 11px system-ui, sans-serif; fill: #c0392b; }
"""
