#!/usr/bin/env python3
"""Tables of tools/fidelity_evidence.sh's runs (docs/BENCHMARKS.md, "Multi-fidelity").

  python3 tools/fidelity_summary.py OUT_DIR

For each mode (fidelities, the probe screen, both), dedup mode and seed: the final
hypervolume of the full-fidelity default, and the compute (full-evaluation equivalents) and
time each search needed to reach it; then the hypervolume of all at equal compute. Reads the --trace_csv files and wall.txt.
"""
import csv
import os
import re
import sys


def trace(path):
    """The rows of a --trace_csv file; exits naming the file and line if one is malformed."""
    with open(path) as f:
        reader = csv.DictReader(f)
        rows = []
        for row in reader:
            try:
                rows.append({k: float(v) for k, v in row.items()})
            except (TypeError, ValueError) as e:
                sys.exit(f"fidelity_summary: {path}:{reader.line_num}: not a trace row ({e})")
        missing = {"compute_full_evaluations", "hypervolume", "seconds"} - set(reader.fieldnames or [])
        if missing:
            sys.exit(f"fidelity_summary: {path}: no column {', '.join(sorted(missing))} (not a --trace_csv file)")
        if not rows:
            sys.exit(f"fidelity_summary: {path}: no rows (the search recorded nothing)")
        return rows


def hv_at(rows, compute):
    """Hypervolume of the last trace row whose compute is at most `compute`."""
    best = 0.0
    for r in rows:
        if r["compute_full_evaluations"] <= compute + 1e-9:
            best = r["hypervolume"]
    return best


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: fidelity_summary.py OUT_DIR")
    out = sys.argv[1]
    if not os.path.isdir(out):
        sys.exit(f"fidelity_summary: {out} is not a directory (tools/fidelity_evidence.sh's OUT_DIR)")
    wall = {}
    wall_path = os.path.join(out, "wall.txt")
    if os.path.exists(wall_path):
        for line in open(wall_path):
            m = re.match(r"(\S+) ([0-9.]+) s", line)
            if m:
                wall[m.group(1)] = float(m.group(2))
    runs = {}
    for name in os.listdir(out):
        m = re.match(r"(full|fidelity|screen|both)-(functional|none)-(\d+)\.csv$", name)
        if m:
            runs[(m.group(1), m.group(2), int(m.group(3)))] = trace(os.path.join(out, name))
    seeds = sorted({k[2] for k in runs})
    modes = [m for m in ("fidelity", "screen", "both") if any(k[0] == m for k in runs)]
    print("Compute and wall time to reach the full-fidelity search's final hypervolume (its trace's times):")
    print()
    print("| mode | dedup | seed | full: final hypervolume | full: compute, s | compute to reach it | s to reach it | "
          "share of full's compute | share of full's time | final hypervolume (its budget) | "
          "without the cache: share of compute to reach the cached full search's |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for mode in modes:
        for dedup in ("functional", "none"):
            for seed in seeds:
                full = runs.get(("full", dedup, seed))
                run = runs.get((mode, dedup, seed))
                if not full or not run:
                    continue
                target = full[-1]["hypervolume"]
                full_compute = full[-1]["compute_full_evaluations"]
                full_wall = full[-1]["seconds"]
                reach = next((r for r in run if r["hypervolume"] >= target - 1e-9), None)
                if reach:
                    c, t = reach["compute_full_evaluations"], reach["seconds"]
                    cells = [f"{c:.2f}", f"{t:.0f}", f"{c / full_compute:.2f}", f"{t / full_wall:.2f}"]
                else:
                    cells = ["not reached", "-", "-", "-"]
                # Issue 12's target is the full-fidelity default's, which has the cache: a run
                # without it is also measured against that search's final hypervolume.
                cached = runs.get(("full", "functional", seed))
                against_cached = "-"
                if dedup == "none" and cached:
                    r2 = next((r for r in run if r["hypervolume"] >= cached[-1]["hypervolume"] - 1e-9), None)
                    against_cached = (f"{r2['compute_full_evaluations'] / cached[-1]['compute_full_evaluations']:.2f}"
                                      if r2 else "not reached")
                print(f"| {mode} | {dedup} | {seed} | {target:.1f} | {full_compute:.0f}, {full_wall:.0f} | " + " | ".join(cells) +
                      f" | {run[-1]['hypervolume']:.1f} ({run[-1]['compute_full_evaluations']:.0f}) | {against_cached} |")
    print()
    print("Hypervolume at equal compute (40 / 80 / 160 full-evaluation equivalents):")
    print()
    print("| dedup | seed | full fidelity | " + " | ".join(modes) + " |")
    print("| --- | --- | --- |" + " --- |" * len(modes))
    for dedup in ("functional", "none"):
        for seed in seeds:
            full = runs.get(("full", dedup, seed))
            if not full:
                continue
            cells = [" / ".join(f"{hv_at(full, c):.1f}" for c in (40, 80, 160))]
            for mode in modes:
                run = runs.get((mode, dedup, seed))
                cells.append(" / ".join(f"{hv_at(run, c):.1f}" for c in (40, 80, 160)) if run else "-")
            print(f"| {dedup} | {seed} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
