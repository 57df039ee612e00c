#!/usr/bin/python3
"""Counts an experiment's Pareto front straight from the database, independently of the C++
code: unique configurations (cache key), feasible, non-dominated in (effective bits,
perplexity increase). Feasibility is the recorded violation, or, given the constraints'
limits, decided here from the objectives.
Usage: db_pareto_front.py DB EXPERIMENT_ID [MAX_BITS MAX_INCREASE_PERCENT]"""
import sqlite3
import sys

db, experiment = sys.argv[1], int(sys.argv[2])
limits = (float(sys.argv[3]), float(sys.argv[4])) if len(sys.argv) > 4 else None
rows = sqlite3.connect(db).execute(
    "SELECT cache_key, exact_hash, effective_bits, perplexity_increase_percent, violation "
    "FROM candidates WHERE experiment_id = ? AND mean_nll IS NOT NULL ORDER BY id", (experiment,)).fetchall()
seen, points = set(), []
for key, exact, bits, ppl, violation in rows:
    k = key or exact
    if k in seen:
        continue
    seen.add(k)
    feasible = violation == 0 if limits is None else bits <= limits[0] and ppl <= limits[1]
    if feasible:
        points.append((bits, ppl))
front = [p for p in points
         if not any(q[0] <= p[0] and q[1] <= p[1] and q != p for q in points)]
print(len(front))
