"""The replay report: Markdown + PNG plots (matplotlib, Agg backend: no display needed)."""
from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from marketpulse.schemas import Alert
from consumers.replay.compare import Comparison, compare_alerts, incidents
from consumers.replay.runner import ReplayResult
from consumers.replay.emerging_topics import TopicCluster


def _ts(x: float | datetime) -> str:
    d = x if isinstance(x, datetime) else datetime.fromtimestamp(x, tz=timezone.utc)
    return d.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M")


def _md_table(header: list[str], rows: list[list[object]]) -> list[str]:
    def cell(v: object) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(cell(v) for v in r) + " |" for r in rows)]


def _plot_shares(result: ReplayResult, keys: list[str], marked: dict[str, list[Alert]], title: str,
                 path: Path, smooth: int) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    series = result.series
    if series is None or not keys:
        return False
    fig, ax = plt.subplots(figsize=(11, 4.5), dpi=100)
    for key in keys:
        xs, ys = series.share(key, smooth)
        if not xs:
            continue
        times = [datetime.fromtimestamp(x, tz=timezone.utc) for x in xs]
        (line,) = ax.plot(times, ys, label=key.split(":", 1)[-1], linewidth=1.3)
        for a in marked.get(key, []):
            # Shade the incident's window and mark the bucket that fired it.
            ax.axvspan(a.window_start, a.window_end, color=line.get_color(), alpha=0.15)
            ax.scatter([a.window_start], [a.negative_share if a.negative_share is not None else 1.0],
                       marker="v", s=60, color=line.get_color(), edgecolor="black", zorder=5)
    ax.set_title(title)
    ax.set_ylabel(f"negative share ({smooth}-bucket window)")
    ax.set_ylim(0, 1.02)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M", tz=timezone.utc))
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8, ncol=2)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def write_report(result: ReplayResult, out_dir: Path, topics: list[TopicCluster] | None = None,
                 topics_note: str | None = None, top_n: int = 6, tolerance_buckets: int = 5,
                 smooth: int = 5) -> Path:
    """Writes ``report.md``, ``summary.json`` and PNGs into ``out_dir``; returns the Markdown path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    bucket_s = result.lanes[0].config.bucket_s
    primary = result.lanes[0]
    by_key: dict[str, list[Alert]] = {}
    for a in incidents(primary.alerts):
        by_key.setdefault(a.key, []).append(a)
    series = result.series
    top_topics = series.top("topic", top_n) if series else []
    alerted_tickers = [k for k, _ in Counter(a.key for a in incidents(primary.alerts)
                                             if a.key_type == "ticker").most_common()]
    top_tickers = (alerted_tickers + [k for k in (series.top("ticker", top_n) if series else [])
                                      if k not in alerted_tickers])[:top_n]

    md = [f"# Replay {result.run_id}", ""]
    md += _md_table(["", ""], [
        ["range", f"{result.start.isoformat()} → {result.end.isoformat()}"],
        ["source", result.source], ["events", result.events], ["skipped (invalid)", result.skipped],
        ["model versions (stored labels)", ", ".join(f"{v} ({n})" for v, n in result.model_versions.most_common())
         or "–"],
        ["model version (rescored)", result.rescored_version or "not rescored"],
        ["alerts index", result.alerts_index or "not written"],
        ["events index", result.events_index or "–"],
        ["alert configs", ", ".join(f"{l.name} [{l.labels} labels]" for l in result.lanes)],
        ["wall time", f"{result.wall_s:.1f} s"],
    ])

    md += ["", "## Negative share over time", ""]
    if _plot_shares(result, top_topics, by_key, "Negative share by topic (top by volume)",
                    out_dir / "topics.png", smooth):
        md += [f"Top {len(top_topics)} topics by volume; shaded windows are alerts "
               f"({primary.name}).", "", "![negative share by topic](topics.png)", ""]
    if _plot_shares(result, top_tickers, by_key, "Negative share by ticker (alerted first, then by volume)",
                    out_dir / "tickers.png", smooth):
        md += ["![negative share by ticker](tickers.png)", ""]

    md += ["## Alerts", ""]
    for lane in result.lanes:
        md += [f"### {lane.name} ({lane.labels} labels)", ""]
        rows = [[_ts(a.window_start), a.key, a.status, a.severity, f"{a.score:.1f}", f"{a.observed:.1f}",
                 f"{a.expected:.1f}", "" if a.negative_share is None else f"{a.negative_share:.0%}",
                 (a.top_events[0].text[:80] if a.top_events else ""), f"`{a.id}`"] for a in lane.alerts]
        md += (_md_table(["window start (UTC)", "key", "status", "severity", "score", "observed", "expected",
                          "neg. share", "top headline", "id"], rows) if rows else ["No alerts."])
        md += [""]

    comparison: Comparison | None = None
    if len(result.lanes) > 1:
        comparison = compare_alerts(result.alerts, bucket_s, tolerance_buckets)
        md += ["## Configuration comparison", "",
               f"Incidents overlap when they have the same key and windows at most {tolerance_buckets} "
               f"buckets ({tolerance_buckets * bucket_s} s) apart. Lead = how much earlier the first "
               "config fired (event time); negative means the second fired first.", ""]
        md += _md_table(["config", "incidents", "escalations", "critical"],
                        [[n, c["incidents"], c["escalations"], c["critical"]] for n, c in comparison.counts.items()])
        md += [""]
        md += _md_table(["A", "B", "overlap", "only A", "only B", "Jaccard", "A earlier", "B earlier",
                         "median lead A→B"],
                        [[p.a, p.b, p.overlap, len(p.only_a), len(p.only_b), f"{p.jaccard:.2f}", p.a_earlier,
                          p.b_earlier, "–" if p.median_lead_s is None else f"{p.median_lead_s:+.0f} s"]
                         for p in comparison.pairs])
        for p in comparison.pairs:
            rows = ([[m.key, _ts(m.a.window_start), _ts(m.b.window_start), f"{m.lead_s:+.0f} s"] for m in p.matches]
                    + [[a.key, _ts(a.window_start), "–", f"only {p.a}"] for a in p.only_a]
                    + [[b.key, "–", _ts(b.window_start), f"only {p.b}"] for b in p.only_b])
            if rows:
                md += ["", f"#### {p.a} vs {p.b}", ""]
                md += _md_table(["key", f"{p.a} start", f"{p.b} start", "lead"], rows)
        md += [""]

    md += ["## Emerging topics", ""]
    if topics_note:
        md += [topics_note, ""]
    if topics:
        md += ["Clusters of event embeddings, named by c-TF-IDF terms, fastest-growing first "
               "(share of events in the second half of the range vs the first).", ""]
        md += _md_table(["topic", "events", "1st half", "2nd half", "Δ share", "example"],
                        [[t.label, t.size, f"{t.share_first:.1%}", f"{t.share_second:.1%}", f"{t.growth:+.1f} pp",
                          t.examples[0] if t.examples else ""] for t in topics])
        md += [""]
    elif not topics_note:
        md += ["Not computed.", ""]

    summary = result.summary()
    if comparison is not None:
        summary["comparison"] = [{"a": p.a, "b": p.b, "overlap": p.overlap, "only_a": len(p.only_a),
                                  "only_b": len(p.only_b), "median_lead_s": p.median_lead_s}
                                 for p in comparison.pairs]
    summary["alert_ids"] = {lane.name: sorted({a.id for a in lane.alerts}) for lane in result.lanes}
    if topics:
        summary["emerging_topics"] = [{"label": t.label, "size": t.size, "growth_pp": round(t.growth, 2)}
                                      for t in topics]
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    path = out_dir / "report.md"
    path.write_text("\n".join(md) + "\n")
    return path
