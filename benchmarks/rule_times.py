"""Where a tier's time went: the `benchmark:` files Snakemake wrote, summed per kind of rule.

    python benchmarks/rule_times.py results/laptop/benchmarks [more folders, side by side]

One row per kind (Stage-1 / Stage-2 training cohorts, encoder pretraining, worlds, analysis,
tables, figures, ...): jobs, summed wall seconds, summed CPU seconds and the largest peak memory
(max_rss, MB). The wall seconds add up jobs that ran side by side, so on 2 cores they are about
twice the run's wall time when both cores stayed busy.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path


def kind(path: Path, root: Path) -> str:
    """stage1/cohorts/x.tsv -> stage1; analysis/<run>/.../seed=0.tsv -> analysis."""
    parts = path.relative_to(root).parts
    return parts[0] if len(parts) > 1 else "other"


def summarise(root: str | Path) -> dict[str, dict[str, float]]:
    root = Path(root)
    if not root.is_dir():
        raise SystemExit(f"{root}: no such folder (a tier's results/<tier>/benchmarks)")
    rows: dict[str, dict[str, float]] = {}
    for path in sorted(root.rglob("*.tsv")):
        with open(path) as handle:
            records = list(csv.DictReader(handle, delimiter="\t"))
        if not records:
            continue
        last = records[-1]
        row = rows.setdefault(kind(path, root), {"jobs": 0, "wall_s": 0.0, "cpu_s": 0.0,
                                                 "max_rss_mb": 0.0})
        row["jobs"] += 1
        row["wall_s"] += float(last.get("s") or 0)
        row["cpu_s"] += float(last.get("cpu_time") or 0)
        rss = last.get("max_rss") or "0"
        row["max_rss_mb"] = max(row["max_rss_mb"], float(rss) if rss != "-" else 0.0)
    if not rows:
        raise SystemExit(f"{root}: no benchmark files")
    return rows


def table(folders: list[str]) -> str:
    summaries = [summarise(f) for f in folders]
    kinds = sorted({k for s in summaries for k in s})
    head = "| kind | " + " | ".join(f"jobs, wall s, CPU s ({f})" for f in folders) + " |"
    lines = [head, "|---" * (len(folders) + 1) + "|"]
    for name in [*kinds, "total"]:
        cells = []
        for s in summaries:
            if name == "total":
                r = {k: sum(v[k] for v in s.values()) for k in ("jobs", "wall_s", "cpu_s")}
            elif name in s:
                r = s[name]
            else:
                cells.append("-")
                continue
            cells.append(f"{int(r['jobs'])}, {r['wall_s']:,.0f}, {r['cpu_s']:,.0f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        raise SystemExit("usage: python benchmarks/rule_times.py results/<tier>/benchmarks [...]")
    print(table(argv))


if __name__ == "__main__":
    main()
