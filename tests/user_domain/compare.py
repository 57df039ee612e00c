#!/usr/bin/python3
"""Cross-checks an `mlp_recipe` evaluator and probe against reference_recipe.py.

Usage:
    /usr/bin/python3 tests/user_domain/compare.py EVALUATOR PROBE [N]
        [--genes-json FILE] [--seed S] [--strict] [--timeout SEC]

EVALUATOR and PROBE are programs speaking the fecsearch.domain.v1 JSON protocol
(docs/DOMAINS.md); each is run as `/usr/bin/python3 PROGRAM` with cwd = the repository root,
one request on stdin per gene assignment.  The assignments are N dictionaries drawn with a
fixed seed (--seed, default 1234) from the gene space of TASK.md section 1 (conditional genes
only when their condition holds; lr log-uniform in [1e-3, 1]) and/or the JSON list of gene
dicts in --genes-json FILE (checked first).

For every assignment:
  * params must be equal exactly;
  * val_loss must agree to 1e-9 relative on STABLE recipes.  A recipe is stable when the
    reference's val_loss moves by at most 1e-9 relative if the sigmoid is replaced by the
    mathematically equal 0.5 * (1 + tanh(s / 2)) (the test of TASK.md "Reproducibility").
    On an unstable (chaotic) recipe val_loss is printed with its difference but not judged
    (unless --strict);
  * the probe outputs must have the same length and agree to 1e-9 relative element-wise;
    the same stability test is applied to the probe (all outputs within 1e-9 under the
    substitution); an unstable probe is printed but not judged (unless --strict).
  * an assignment the reference rejects (invalid genes, only possible with --genes-json) must
    be rejected by both programs with an {"error": ...} answer.

Prints one line per assignment and a final line "N agreed, M disagreed".
Exit code: 0 all agree, 1 some disagree, 2 usage error.
"""

import argparse
import json
import math
import os
import random
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import reference_recipe as ref  # noqa: E402

PROTOCOL = "fecsearch.domain.v1"
DOMAIN = "mlp_recipe"
TOL = 1e-9


def draw_genes(rng):
    """One valid gene assignment from TASK.md section 1."""
    g = {}
    for name, kind, allowed, cond in ref.GENE_SPACE:
        if cond is not None and g.get(cond[0]) not in cond[1]:
            continue
        if kind == "float":
            lo, hi = allowed
            g[name] = math.exp(rng.uniform(math.log(lo), math.log(hi)))
            g[name] = min(max(g[name], lo), hi)
        else:
            g[name] = rng.choice(list(allowed))
    return g


def rel_diff(a, b):
    if a == b:
        return 0.0
    if not (math.isfinite(a) and math.isfinite(b)):
        return math.inf
    return abs(a - b) / max(abs(a), abs(b))


class Program:
    def __init__(self, path, timeout):
        self.path = path
        self.timeout = timeout

    def start(self, request):
        proc = subprocess.Popen(["/usr/bin/python3", self.path], cwd=REPO_ROOT,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)
        return proc, json.dumps(request).encode()

    def finish(self, started):
        """Returns (response dict or None, error text or None)."""
        proc, data = started
        try:
            out, err = proc.communicate(data, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            return None, "timed out after %ss" % self.timeout
        if proc.returncode != 0:
            return None, "exit %d: %s" % (proc.returncode, err.decode(errors="replace")[-300:])
        try:
            resp = json.loads(out.decode())
        except ValueError as e:
            return None, "malformed JSON (%s): %r" % (e, out[:200])
        if not isinstance(resp, dict) or resp.get("protocol") != PROTOCOL:
            return None, "response without protocol %s: %r" % (PROTOCOL, out[:200])
        return resp, None


def check_one(i, genes, evaluator, prober, strict):
    """Returns (agreed: bool, line: str)."""
    eval_req = {"protocol": PROTOCOL, "kind": "evaluate", "domain": DOMAIN,
                "candidate_id": i, "attempt": 1, "genes": genes}
    probe_req = {"protocol": PROTOCOL, "kind": "probe", "domain": DOMAIN,
                 "attempt": 1, "genes": genes}
    # Start both programs, compute the reference while they run.
    ev_started = evaluator.start(eval_req)
    pr_started = prober.start(probe_req)
    ref_error = None
    try:
        r_eval = ref.evaluate(genes)
        r_probe = ref.probe(genes)
        r_eval_t = ref.evaluate(genes, sigmoid="tanh")
        r_probe_t = ref.probe(genes, sigmoid="tanh")
    except ValueError as e:
        ref_error = str(e)
    ev_resp, ev_err = evaluator.finish(ev_started)
    pr_resp, pr_err = prober.finish(pr_started)
    gtxt = json.dumps(genes, sort_keys=False)
    problems, notes = [], []

    if ref_error is not None:
        for who, resp, err in (("evaluator", ev_resp, ev_err), ("probe", pr_resp, pr_err)):
            if err is not None:
                problems.append("%s failed (%s) instead of rejecting" % (who, err))
            elif "error" not in resp:
                problems.append("%s accepted genes the reference rejects (%s): %r"
                                % (who, ref_error, resp))
        verdict = "agree" if not problems else "DISAGREE"
        return not problems, "#%d %s both reject (%s)%s genes %s" % (
            i, verdict, ref_error, "".join("; " + p for p in problems), gtxt)

    # ---- evaluate
    if ev_err is not None:
        problems.append("evaluator failed: %s" % ev_err)
    elif "error" in ev_resp:
        problems.append("evaluator rejected valid genes: %s" % ev_resp["error"])
    else:
        obj = ev_resp.get("objectives", {})
        vl, pa = obj.get("val_loss"), obj.get("params")
        if not isinstance(pa, (int, float)) or isinstance(pa, bool) or pa != r_eval["params"]:
            problems.append("params ref=%d theirs=%r" % (r_eval["params"], pa))
        else:
            notes.append("params %d" % r_eval["params"])
        if not isinstance(vl, (int, float)) or isinstance(vl, bool) or not math.isfinite(vl):
            problems.append("val_loss theirs=%r not a finite number" % (vl,))
        else:
            d = rel_diff(r_eval["val_loss"], vl)
            stab = rel_diff(r_eval["val_loss"], r_eval_t["val_loss"])
            stable = stab <= TOL
            kind = "stable" if stable else "UNSTABLE (sigmoid-substitution moves it %.1e)" % stab
            txt = "val_loss ref=%r theirs=%r rel diff %.1e, %s" % (r_eval["val_loss"], vl, d, kind)
            if d <= TOL:
                notes.append(("val_loss %r (%s, bit-identical)" % (vl, kind)) if d == 0 else txt)
            elif stable or strict:
                problems.append(txt)
            else:
                notes.append(txt + ", not judged")

    # ---- probe
    if pr_err is not None:
        problems.append("probe failed: %s" % pr_err)
    elif "error" in pr_resp:
        problems.append("probe rejected valid genes: %s" % pr_resp["error"])
    else:
        outs = pr_resp.get("outputs")
        if not isinstance(outs, list) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in outs):
            problems.append("probe outputs not a list of numbers: %r" % (outs,))
        elif len(outs) != len(r_probe):
            problems.append("probe length ref=%d theirs=%d" % (len(r_probe), len(outs)))
        else:
            diffs = [rel_diff(a, float(b)) for a, b in zip(r_probe, outs)]
            worst = max(range(len(diffs)), key=lambda k: diffs[k])
            dmax = diffs[worst]
            stab = max(rel_diff(a, b) for a, b in zip(r_probe, r_probe_t))
            stable = stab <= TOL
            kind = "stable" if stable else "UNSTABLE (substitution moves it %.1e)" % stab
            txt = "probe %d values, max rel diff %.1e at [%d] ref=%r theirs=%r, %s" % (
                len(outs), dmax, worst, r_probe[worst], outs[worst], kind)
            if dmax <= TOL:
                notes.append(("probe %d values (%s, bit-identical)" % (len(outs), kind))
                             if dmax == 0 else txt)
            elif stable or strict:
                problems.append(txt)
            else:
                notes.append(txt + ", not judged")

    ok = not problems
    return ok, "#%d %s %s genes %s" % (i, "agree" if ok else "DISAGREE",
                                        "; ".join(problems + notes), gtxt)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("evaluator", help="evaluator program (run as /usr/bin/python3 PROGRAM)")
    ap.add_argument("probe", help="probe program (run as /usr/bin/python3 PROGRAM)")
    ap.add_argument("n", nargs="?", type=int, default=None,
                    help="number of random gene assignments to draw")
    ap.add_argument("--genes-json", metavar="FILE",
                    help="JSON list of gene dicts to check (before the random ones)")
    ap.add_argument("--seed", type=int, default=1234, help="seed of the gene draw (1234)")
    ap.add_argument("--strict", action="store_true",
                    help="judge val_loss and probe at 1e-9 even on unstable recipes")
    ap.add_argument("--timeout", type=float, default=600.0,
                    help="seconds allowed per program run (600)")
    args = ap.parse_args(argv)  # exits 2 on a usage error

    def usage(msg):
        ap.print_usage(sys.stderr)
        print("compare.py: error: " + msg, file=sys.stderr)
        return 2

    if args.n is None and args.genes_json is None:
        return usage("give N and/or --genes-json FILE")
    if args.n is not None and args.n < 0:
        return usage("N must be >= 0")
    for p in (args.evaluator, args.probe):
        if not os.path.isfile(os.path.join(REPO_ROOT, p)):
            return usage("no such program: %s" % p)
    assignments = []
    if args.genes_json is not None:
        try:
            with open(args.genes_json) as f:
                lst = json.load(f)
        except (OSError, ValueError) as e:
            return usage("cannot read %s: %s" % (args.genes_json, e))
        if not isinstance(lst, list) or not all(isinstance(g, dict) for g in lst):
            return usage("%s must hold a JSON list of gene objects" % args.genes_json)
        assignments.extend(lst)
    if args.n:
        rng = random.Random(args.seed)
        assignments.extend(draw_genes(rng) for _ in range(args.n))

    evaluator = Program(args.evaluator, args.timeout)
    prober = Program(args.probe, args.timeout)
    agreed = disagreed = 0
    for i, genes in enumerate(assignments, 1):
        ok, line = check_one(i, genes, evaluator, prober, args.strict)
        print(line, flush=True)
        if ok:
            agreed += 1
        else:
            disagreed += 1
    print("%d agreed, %d disagreed" % (agreed, disagreed))
    return 0 if disagreed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
