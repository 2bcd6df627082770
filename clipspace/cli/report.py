"""``clipspace report``: HTML + markdown report of runs side by side."""

from __future__ import annotations

import argparse

from clipspace.report import write_report


def add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="HTML + markdown report of one or more runs side by side")
    p.add_argument("runs", nargs="+", help="run directories")
    p.add_argument("--out", default="report", help="output directory (report.html, report.md)")
    p.add_argument("--title", default="clipspace report")
    p.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> int:
    html_path, md_path = write_report(args.runs, args.out, title=args.title)
    print(f"wrote {html_path} and {md_path}")
    return 0
