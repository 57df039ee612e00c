#!/usr/bin/python3
"""The cost of reaching the target with restarts, per deduplication mode, from the table that
`programs_study reach` prints over many short searches (one seed each), as AutoML-Zero's demo
restarts experiments until one succeeds. The estimate of the expected cost to the first success
is the cost of every run (failed runs in full, successful ones up to the point they reached the
target) divided by the number of successes (docs/PROGRAMS.md section 7, "Restarts").
Wall seconds come from each search's /usr/bin/time line in OUT_DIR/<db name>.err.
Usage: restart_cost.py REACH_TABLE.md OUT_DIR"""
import os
import re
import sys


def main():
    table, out_dir = sys.argv[1], sys.argv[2]
    lines = [l for l in open(table) if l.startswith("|")]
    head = [c.strip() for c in lines[0].strip().strip("|").split("|")]
    col = {name: i for i, name in enumerate(head)}
    reached_col = next(name for name in head if name.startswith("reached"))
    modes = {}
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        db = cells[col["db"]]
        mode = cells[col["dedup"]]
        err = os.path.join(out_dir, os.path.basename(db)[:-3] + ".err")
        wall = None
        if os.path.exists(err):
            for l in open(err):
                m = re.match(r"([0-9.]+) s wall", l)
                if m:
                    wall = float(m.group(1))
        m = modes.setdefault(mode, {"runs": 0, "ok": 0, "evals": 0, "cands": 0, "secs": 0.0, "seeds": []})
        m["runs"] += 1
        if cells[col[reached_col]] == "yes":
            m["ok"] += 1
            m["seeds"].append(cells[col["seed"]])
            m["evals"] += int(cells[col["evaluations to reach"]])
            m["cands"] += int(cells[col["candidates to reach"]])
            m["secs"] += float(cells[col["seconds to reach"]])
        else:
            m["evals"] += int(cells[col["evaluated"]])
            m["cands"] += int(cells[col["candidates"]])
            if wall is None:
                sys.exit("no wall time for %s in %s" % (db, err))
            m["secs"] += wall
    print("| dedup | runs | reached the target | seeds that reached it | evaluations per success | candidates per success | seconds per success |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for mode in sorted(modes):
        m = modes[mode]
        per = (lambda x: "%.0f" % (x / m["ok"])) if m["ok"] else (lambda x: "- (none reached it; > %.0f)" % x)
        print("| %s | %d | %d | %s | %s | %s | %s |" % (mode, m["runs"], m["ok"], ", ".join(m["seeds"]) or "-",
                                                      per(m["evals"]), per(m["cands"]),
                                                      ("%.1f" % (m["secs"] / m["ok"])) if m["ok"] else "-"))


if __name__ == "__main__":
    main()
