#!/usr/bin/env python3
"""Tables of tools/fidelity_evidence.sh's runs (docs/BENCHMARKS.md, "Multi-fidelity").

  python3 tools/fidelity_summary.py OUT_DIR

For each seed and dedup mode: the final hypervolume of the full-fidelity default, and the
compute (full-evaluation equivalents) and wall time the fidelity search needed to reach it;
then the hypervolume of both at equal compute. Reads the --trace_csv files and wall.txt.
"""
import csv
import os
import re
import sys


def trace(path):
    with open(path) as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


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
    wall = {}
    wall_path = os.path.join(out, "wall.txt")
    if os.path.exists(wall_path):
        for line in open(wall_path):
            m = re.match(r"(\S+) ([0-9.]+) s", line)
            if m:
                wall[m.group(1)] = float(m.group(2))
    runs = {}
    for name in os.listdir(out):
        m = re.match(r"(full|fidelity)-(functional|none)-(\d+)\.csv$", name)
        if m:
            runs[(m.group(1), m.group(2), int(m.group(3)))] = trace(os.path.join(out, name))
    seeds = sorted({k[2] for k in runs})
    print("| dedup | seed | full: final hypervolume | full: compute, wall s | fidelity: compute to reach it | "
          "fidelity: wall s to reach it | share of full's compute | share of full's wall time | fidelity: final hypervolume (its budget) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for dedup in ("functional", "none"):
        for seed in seeds:
            full = runs.get(("full", dedup, seed))
            fid = runs.get(("fidelity", dedup, seed))
            if not full or not fid:
                continue
            target = full[-1]["hypervolume"]
            full_compute = full[-1]["compute_full_evaluations"]
            full_wall = full[-1]["seconds"]
            reach = next((r for r in fid if r["hypervolume"] >= target - 1e-9), None)
            if reach:
                c, s = reach["compute_full_evaluations"], reach["seconds"]
                cells = [f"{c:.2f}", f"{s:.0f}", f"{c / full_compute:.2f}", f"{s / full_wall:.2f}"]
            else:
                cells = ["not reached", "-", "-", "-"]
            print(f"| {dedup} | {seed} | {target:.3f} | {full_compute:.0f}, {full_wall:.0f} | " + " | ".join(cells) +
                  f" | {fid[-1]['hypervolume']:.3f} ({fid[-1]['compute_full_evaluations']:.0f}) |")
    print()
    print("Hypervolume at equal compute (full-evaluation equivalents):")
    print()
    print("| dedup | seed | compute | full fidelity | fidelities |")
    print("| --- | --- | --- | --- | --- |")
    for dedup in ("functional", "none"):
        for seed in seeds:
            full = runs.get(("full", dedup, seed))
            fid = runs.get(("fidelity", dedup, seed))
            if not full or not fid:
                continue
            for c in (40, 80, 160):
                print(f"| {dedup} | {seed} | {c} | {hv_at(full, c):.3f} | {hv_at(fid, c):.3f} |")


if __name__ == "__main__":
    main()
