"""Write the HTML recovery report of one case (a few seconds): the case, its notes and its
history from the desk (KAIWA_DESK_DB), into ``--out``.

Output protocol (agent/jobs.py): ``PROGRESS <percent>`` lines, then ``RESULT: ...``; exit
0 on success, 2 when the case does not exist.

    python agent/jobs_examples/recovery_report.py --case R-1042 --out data/jobs/reports/r.html
"""

from __future__ import annotations

import argparse
import html
import os
import sys
import time
from pathlib import Path

STEP_S = float(os.environ.get("KAIWA_REPORT_STEP_S", "0.5"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--case", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    from desk import Desk, DeskError

    print("PROGRESS 10 opening the case database", flush=True)
    desk = Desk.open(os.environ.get("KAIWA_DESK_DB") or "data/desk.sqlite3")
    try:
        case = desk.get_case(args.case)
    except DeskError as e:
        print(f"RESULT: {e}", flush=True)
        return 2
    time.sleep(STEP_S)
    print(f"PROGRESS 40 collecting notes and history of {case.id}", flush=True)
    esc = html.escape
    notes = "".join(f"<li>{esc(str(n.at))} {esc(n.author)}: {esc(n.text)}</li>" for n in case.notes)
    hist = "".join(
        f"<li>{esc(str(h.at))} {esc(h.actor)}: {esc(h.action)} {esc(str(h.old or ''))} → "
        f"{esc(str(h.new or ''))}</li>"
        for h in case.history
    )
    time.sleep(STEP_S)
    print("PROGRESS 70 rendering", flush=True)
    page = (
        f"<!doctype html><meta charset=utf-8><title>Recovery report {esc(case.id)}</title>"
        f"<h1>Recovery report {esc(case.id)}</h1>"
        f"<p>Customer: {esc(case.customer_name)}<br>Device: {esc(str(case.device_type))}<br>"
        f"Symptom: {esc(case.symptom)}<br>Status: {esc(case.status.value)}<br>"
        f"Quote: {case.quote_yen if case.quote_yen is not None else '-'} yen</p>"
        f"<h2>Notes</h2><ul>{notes}</ul><h2>History</h2><ul>{hist}</ul>"
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    time.sleep(STEP_S)
    print("PROGRESS 100 written", flush=True)
    print(
        f"RESULT: the report of {case.id} ({case.status.value}) is ready: {out.name}.", flush=True
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
