#!/usr/bin/python3
"""Compares searches recorded in fecsearch databases (docs/BENCHMARKS.md, docs/PIPELINE_GRAPHS.md).

    tools/compare_searches.py LABEL=DB[:EXPERIMENT_ID] ...

For each run: candidates, evaluations, cache hits and merges, the share of candidates that
needed no evaluation, the final Pareto hypervolume (effective bits x perplexity increase %,
feasible candidates, reference point (17.6 bits, 55 %) as the default experiment's), and the
evaluations and wall time each run needed to reach the hypervolume that every run reached (the
smallest final one). For pipeline-graph runs, also the share of functional cache hits whose
structural hash differs from that of the candidate that created the cache entry."""
import sqlite3
import sys

REF = (17.6, 55.0)


def hypervolume(points):
    pts = sorted((b, p) for b, p in points if b < REF[0] and p < REF[1])
    hv, best = 0.0, REF[1]
    for b, p in pts:
        if p < best:
            hv += (REF[0] - b) * (best - p)
            best = p
    return hv


def load(spec):
    label, rest = spec.split("=", 1)
    path, _, exp = rest.partition(":")
    db = sqlite3.connect(path)
    if not exp:
        exp = db.execute("SELECT max(id) FROM experiments").fetchone()[0]
    exp = int(exp)
    started = db.execute("SELECT started_micros FROM experiments WHERE id = ?", (exp,)).fetchone()[0]
    rows = db.execute(
        "SELECT id, outcome, effective_bits, perplexity_increase_percent, violation, finished_micros, cache_key,"
        " structural_hash FROM candidates WHERE experiment_id = ? ORDER BY completion_seq", (exp,)).fetchall()
    return label, db, exp, started, rows


def summarize(label, db, exp, started, rows):
    evals = hits = merges = 0
    points, trace = [], []
    for _, outcome, bits, ppl, violation, finished, _, _ in rows:
        if outcome in ("MISS", "PARTIAL_HIT"):
            evals += 1
        hits += outcome == "HIT"
        merges += outcome == "MERGED"
        if bits is not None and violation == 0:
            points.append((bits, ppl))
        trace.append((evals, (finished - started) / 1e6, hypervolume(points)))
    return {"label": label, "candidates": len(rows), "evaluations": evals, "hits": hits, "merges": merges,
            "hv": hypervolume(points), "trace": trace}


def first_reaching(trace, target):
    for evals, seconds, hv in trace:
        if hv >= target - 1e-9:
            return evals, seconds
    return None, None


def structural_split(db, exp, rows):
    """Among functional hits and merges: how many differ structurally from the entry's creator."""
    creator = {}
    for _, outcome, _, _, _, _, key, structural in rows:
        if outcome == "MISS" and key and key not in creator:
            creator[key] = structural
    # Entries created by earlier experiments in the same database.
    for key, structural in db.execute(
            "SELECT cache_key, structural_hash FROM candidates WHERE outcome = 'MISS' AND experiment_id != ?", (exp,)):
        creator.setdefault(key, structural)
    hits = differ = 0
    for _, outcome, _, _, _, _, key, structural in rows:
        if outcome in ("HIT", "MERGED") and key in creator:
            hits += 1
            differ += structural != creator[key]
    return hits, differ


def main():
    runs = [load(a) for a in sys.argv[1:]]
    sums = [summarize(*r) for r in runs]
    target = min(s["hv"] for s in sums)
    print(f"| run | candidates | evaluations | cache hits + merges | evaluations saved | final hypervolume |"
          f" evaluations to reach {target:.1f} | wall time to reach it |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for s in sums:
        e, t = first_reaching(s["trace"], target)
        saved = 1 - s["evaluations"] / s["candidates"] if s["candidates"] else 0
        print(f"| {s['label']} | {s['candidates']} | {s['evaluations']} | {s['hits'] + s['merges']} | {100 * saved:.1f} % |"
              f" {s['hv']:.1f} | {e} | {t:.1f} s |")
    for (label, db, exp, _, rows), s in zip(runs, sums):
        hits, differ = structural_split(db, exp, rows)
        if hits:
            print(f"\n{label}: {hits} functional cache hits and merges; {differ} of them ({100 * differ / hits:.1f} %) "
                  f"have a structural hash different from the entry's first candidate (equivalences only behaviour reveals).")


if __name__ == "__main__":
    main()
