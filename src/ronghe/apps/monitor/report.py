"""``ronghe monitor report``: the dashboard's charts, alerts and totals as one static HTML file
(SVG inline, no script, nothing fetched) for a time range."""

from __future__ import annotations

from datetime import datetime, timezone
from html import escape
from pathlib import Path

from ...store import parse_since  # noqa: F401  (monitor/cli.py imports it from here)
from . import queries
from .charts import STYLE, key_chart

def build(store, rules: list[str] | None, *, since: datetime | None = None, bucket_s: int = 3600,
          max_keys: int = 12) -> str:
    start = since.timestamp() if since else None
    totals = queries.totals(store)
    keys = [k for k in queries.keys(store, since=start, limit=max_keys) if rules is None or k["rule"] in rules]
    alerts = [a for a in queries.alerts(store, limit=500, since=since)]
    charts = []
    for k in keys:
        pts = queries.series(store, k["rule"], k["key"], bucket_s=bucket_s, since=start)
        marks = [{"id": a["id"], "ts": datetime.fromisoformat(a["window_end"] or
                                                              a["created_at"]).timestamp()}
                 for a in alerts if a["key"] == k["key"] and a["rule"] == k["rule"]]
        charts.append(key_chart(f"{k['key']} ({k['n']} items, {k['share']:.0%} negative)",
                                pts, marks, bucket_s))
    rows = []
    for a in alerts:
        ev = "".join(f"<li>{escape(e['text'])} <small>({e['neg_prob']:.0%})</small></li>"
                     for e in a.get("evidence") or [])
        rows.append(f"<tr><td>{a['id']}</td><td>{escape(a['created_at'] or '')}</td>"
                    f"<td>{escape(a['key'])}</td><td>{escape(a['status'])}</td>"
                    f"<td>{a['observed']:.1%} vs {a['expected']:.1%} over {a['window_n']}</td>"
                    f"<td>{escape(a['method'])} {a['score']:.2f}, p={a['p_value']:.2g}</td>"
                    f"<td><ul>{ev}</ul></td></tr>")
    period = f"since {since.isoformat(timespec='minutes')}" if since else "all items"
    made = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ronghe monitor report</title>
<style>body {{ font: 14px system-ui, sans-serif; margin: 1.5em; color: #222; }}
.grid {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(420px, 1fr)); gap: .8em; }}
table {{ border-collapse: collapse; width: 100%; }} td, th {{ border-bottom: 1px solid #eee;
padding: .3em .5em; text-align: left; vertical-align: top; }} ul {{ margin: 0; padding-left: 1em; }}
{STYLE}</style></head><body>
<h1>ronghe monitor report</h1>
<p>{escape(period)}; made {made}. Totals in the database: {totals['items']} items
({totals['negative']} negative), {totals['rejected']} rejected, {totals['alerts']} alerts
({totals['alerts_open']} open).</p>
<h2>Volume and negative share per key</h2>
<p>Bars: items per {bucket_s // 60 if bucket_s >= 60 else bucket_s}
{'minute' if bucket_s >= 60 else 'second'} bucket(s); red line: negative share; dashed: alerts.</p>
<div class="grid">{''.join(charts) or '<p>no items in this period</p>'}</div>
<h2>Alerts ({len(alerts)})</h2>
<table><tr><th>#</th><th>raised</th><th>key</th><th>status</th><th>negative share</th>
<th>score</th><th>top negative texts</th></tr>{''.join(rows)}</table>
</body></html>
"""


def write(store, rules: list[str] | None, out: Path, **kw) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(build(store, rules, **kw), encoding="utf-8")
    tmp.replace(out)
    return out
