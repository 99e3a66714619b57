"""Print the numeric measurements of two benchmark JSON files side by side with their ratio.

    python benchmarks/compare.py benchmarks/results/old.json benchmarks/results/new.json
"""

from __future__ import annotations

import json
import sys


def flatten(obj, prefix=""):
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from flatten(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        yield prefix, float(obj)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        raise SystemExit("usage: python benchmarks/compare.py OLD.json NEW.json")
    old, new = (json.load(open(path)) for path in argv)
    print(f"old {old['meta']['commit'][:10]}  new {new['meta']['commit'][:10]}")
    a, b = dict(flatten(old)), dict(flatten(new))
    for key in a:
        if key.startswith("meta.") or key not in b:
            continue
        ratio = b[key] / a[key] if a[key] else float("nan")
        print(f"{key:80s} {a[key]:12.4g} {b[key]:12.4g}  x{ratio:.2f}")


if __name__ == "__main__":
    main()
