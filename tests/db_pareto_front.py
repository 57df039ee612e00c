#!/usr/bin/python3
"""Counts an experiment's Pareto front straight from the database, independently of the C++
code: unique configurations (cache key), feasible, non-dominated in (effective bits,
perplexity increase). Usage: db_pareto_front.py DB EXPERIMENT_ID"""
import sqlite3
import sys

db, experiment = sys.argv[1], int(sys.argv[2])
rows = sqlite3.connect(db).execute(
    "SELECT cache_key, exact_hash, effective_bits, perplexity_increase_percent, violation "
    "FROM candidates WHERE experiment_id = ? AND mean_nll IS NOT NULL ORDER BY id", (experiment,)).fetchall()
seen, points = set(), []
for key, exact, bits, ppl, violation in rows:
    k = key or exact
    if k in seen:
        continue
    seen.add(k)
    if violation == 0:
        points.append((bits, ppl))
front = [p for p in points
         if not any(q[0] <= p[0] and q[1] <= p[1] and q != p for q in points)]
print(len(front))
