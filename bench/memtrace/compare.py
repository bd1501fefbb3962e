"""What grew between two of a process's tracemalloc snapshots (bench/memtrace/sitecustomize.py).

    python -m bench.memtrace.compare DIR [--from N] [--top 15] [--key traceback|lineno]

For each process traced into DIR: the top allocation sites by growth from snapshot N (default
the second, past start-up) to the last, and the sizes of the bounded structures at those two
points and at the middle one (does it level off?).
"""

from __future__ import annotations

import argparse
import json
import re
import tracemalloc
from pathlib import Path

IGNORE = (tracemalloc.Filter(False, tracemalloc.__file__),
          tracemalloc.Filter(False, "<frozen importlib._bootstrap*>"),
          tracemalloc.Filter(False, "*/memtrace/sitecustomize.py"))


def processes(directory: Path) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    for p in sorted(directory.glob("*.snap")):
        m = re.fullmatch(r"(.+-\d+)-(\d+)\.snap", p.name)
        if m:
            found.setdefault(m.group(1), []).append(p)
    return found


def report(name: str, snaps: list[Path], first: int, top: int, key: str) -> None:
    start = snaps[min(first, len(snaps)) - 1]
    a = tracemalloc.Snapshot.load(str(start)).filter_traces(IGNORE)
    b = tracemalloc.Snapshot.load(str(snaps[-1])).filter_traces(IGNORE)
    total = sum(s.size for s in b.statistics("filename")) - sum(
        s.size for s in a.statistics("filename"))
    print(f"== {name}: {start.name} -> {snaps[-1].name}, traced {total / 2**20:+.2f} MiB")
    for stat in b.compare_to(a, key)[:top]:
        frames = stat.traceback.format(limit=6 if key == "traceback" else 1, most_recent_first=True)
        print(f"  {stat.size_diff / 2**10:+9.1f} KiB {stat.count_diff:+8d} blocks  "
              + "\n        ".join(f.strip() for f in frames if f.strip()))
    sizes = directory_sizes(start.parent / f"{name}.sizes.jsonl")
    if sizes:
        n0 = int(start.stem.rsplit("-", 1)[1])
        picks = [r for r in sizes if r["n"] in (n0, sizes[len(sizes) // 2]["n"], sizes[-1]["n"])]
        for r in picks:
            print(f"  sizes at {r['t']:>6} s (n={r['n']}), traced {r['traced'] / 2**20:.1f} MiB, "
                  f"RSS {r.get('rss_kib', 0) / 2**10:.1f} MiB:")
            for obj, attrs in sorted(r["sizes"].items()):
                shown = {k: v for k, v in attrs.items() if v}
                print(f"    {obj.split('@')[0]}: {shown}")


def directory_sizes(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir")
    ap.add_argument("--from", dest="first", type=int, default=2, help="snapshot number to diff from")
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--key", default="traceback", choices=("traceback", "lineno", "filename"))
    ap.add_argument("--only", default="", help="processes whose name contains this")
    args = ap.parse_args()
    for name, snaps in processes(Path(args.dir)).items():
        if args.only in name:
            report(name, snaps, args.first, args.top, args.key)


if __name__ == "__main__":
    main()
