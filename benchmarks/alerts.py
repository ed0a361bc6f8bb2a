"""What a bench result warns about, each a trainer.metrics.alert dict whose severity sets its colour.

Two sources: every variant's honesty alerts from its accuracy block (a single-class model, accuracy no
better than the majority baseline, ...) and the exporter's verdicts (a variant that failed parity).
"""
from __future__ import annotations

import json
from pathlib import Path

from export.variants import title


def collect_alerts(rows) -> list:
    """Every variant's honesty alerts (trainer.metrics.alert dicts), tagged with the variant and its title."""
    return [dict(a, variant=v, message=f"{title(v)}: {a['message']}")
            for v, row in rows.items() for a in row["accuracy"].get("alerts", [])]


def read_export_report(run_dir):
    """RUN/export/export_report.json, or None when the run was not exported (or the file is unreadable)."""
    try:
        return json.loads((Path(run_dir) / "export" / "export_report.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None


def export_alerts(run_dir) -> list:
    """A variant that failed the exporter's parity check is red in the report, not only a skipped row."""
    from trainer.metrics import alert

    rep = read_export_report(run_dir)
    if not isinstance(rep, dict):
        return []
    out = []
    for v, entry in (rep.get("variants") or {}).items():
        if not isinstance(entry, dict) or entry.get("status") != "FAILED":
            continue
        reasons = (entry.get("parity") or {}).get("reasons") or []
        kind, what = (("parity_failed", "failed the export parity check") if reasons
                      else ("export_failed", "failed to export"))
        why = "; ".join(reasons) or entry.get("error") or "see export/export_report.json"
        f = entry.get("file") or ""
        fate = f"kept aside as {f}, not benchmarked" if f.endswith(".failed.tflite") or not f else \
            "exported anyway (--no-fail), so its row below is a failed model"
        out.append(dict(alert(kind, f"{title(v)}: {what} ({why}); {fate}"), variant=v))
    return out
