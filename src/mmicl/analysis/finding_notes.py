"""Why a finding fails, as measured, and the setting where it holds.

A finding that fails on a tier carries here the reason we measured (numbers from that tier's
own tables or from a stated experiment) and the smallest setting where it was seen to hold, as
a tier a user can build (`tiers.holds` in config.yaml), or what was tried without success.
`findings.md` prints these under the table for every failing finding, with the tier and commit
they were measured on: the verdicts themselves never read this file.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class Explanation:
    measured: str  # where the numbers come from (tier, commit)
    reason: str  # the measured reason it fails there
    holds: str  # where it holds and how to build that; or what was tried


LAPTOP = "laptop tier, commit f9603e6"
HOLDS = "`snakemake --config tier=holds` (config.yaml `tiers.holds`)"

EXPLAINED: dict[str, Explanation] = {}


def section(findings: pd.DataFrame) -> str:
    """The Markdown section under the findings table: one entry per failing finding."""
    failing = findings[findings.verdict == "fail"]
    if failing.empty:
        return ""
    lines = ["", "## Failing findings: the measured reason, and where they hold", ""]
    for r in failing.itertuples():
        note = EXPLAINED.get(r.id)
        if note is None:
            lines.append(f"- **{r.statement}** ({r.id}): no measured explanation yet.")
            continue
        lines.append(f"- **{r.statement}** ({r.id}; measured on the {note.measured}): "
                     f"{note.reason} *Where it holds:* {note.holds}")
    return "\n".join(lines) + "\n"
