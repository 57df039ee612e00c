#!/usr/bin/env python3
"""Consistency check of the reference fixtures. Run from anywhere:

    python3 tests/data/reference/check_all.py [--quick]

1. hf_numpy.py's self test.
2. For every tests/data/<name>/golden.json made by the numpy reference: re-reads the fixture's
   config.json and weights, re-runs the reference on the stored input_ids and compares every
   stored number (float64 against float64: rtol 1e-9, atol 1e-9), plus the golden layout.
3. For the tokenizers: re-encodes tokenizer_examples.json with the reference encoders.
4. Regeneration (skipped with --quick): runs each make.py / make_tokenizer.py in a scratch
   copy and requires byte-identical output files.
5. External anchors: the reference against two goldens that transformers itself computed
   (tests/data/tiny-gqa-bf16 and data/tinylm-bytes-5m, both llama, default RoPE, fp32 in
   transformers), at fp32-level tolerances.
Prints 'N passed, M failed' and exits non-zero if anything failed.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.dirname(HERE)
REPO = os.path.dirname(os.path.dirname(DATA))
sys.path.insert(0, HERE)
import hf_numpy as R  # noqa: E402
import fixture_lib as F  # noqa: E402
import tokenizer_lib as TL  # noqa: E402

passed, failed = 0, []


def ok(cond, what):
    global passed
    if cond:
        passed += 1
    else:
        failed.append(what)
        print("FAIL", what)


def close(a, b, rtol, atol):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and bool(np.all(np.abs(a - b) <= atol + rtol * np.abs(b)))


def fixtures():
    out = []
    for name in sorted(os.listdir(DATA)):
        g = os.path.join(DATA, name, "golden.json")
        if os.path.isfile(g):
            with open(g) as f:
                gold = json.load(f)
            if str(gold.get("source", "")).startswith("plain numpy reference"):
                out.append((name, gold))
    return out


def check_fixture(name, gold, rtol=1e-9, atol=1e-9):
    d = os.path.join(DATA, name)
    ok(tuple(gold) == F.GOLDEN_KEYS, f"{name}: golden keys {list(gold)}")
    try:
        spec, weights, cfg = R.load_model(d)
    except Exception as e:  # noqa: BLE001
        ok(False, f"{name}: load: {e}")
        return
    ids = gold["input_ids"]
    ok(len(ids) == gold["window_length"] == gold["tokens_scored"] + 1, f"{name}: lengths")
    g, _ = F.golden_from(spec, weights, ids)
    for key in ("nll_sum", "mean_nll_nats", "mean_entropy_nats"):
        ok(close(g[key], gold[key], rtol, atol), f"{name}: {key} {g[key]} vs {gold[key]}")
    ok(gold["transformers_commit"] == R.TRANSFORMERS_COMMIT, f"{name}: transformers_commit")
    ok(set(gold["logits"]) == set(g["logits"]), f"{name}: logit positions")
    for p in g["logits"]:
        ok(close(g["logits"][p], gold["logits"].get(p, []), rtol, atol), f"{name}: logits[{p}]")
    ok(len(g["kv"]) == len(gold["kv"]), f"{name}: kv entries")
    for a, b in zip(g["kv"], gold["kv"]):
        same = a["layer"] == b["layer"] and a["position"] == b["position"]
        for k in ("key_pre_rope", "key", "value"):
            ok(same and close(a[k], b[k], rtol, atol), f"{name}: kv layer {b['layer']} pos {b['position']} {k}")
    ok(g["rope"]["type"] == gold["rope"]["type"], f"{name}: rope type")
    ok(close(g["rope"]["inv_freq"], gold["rope"]["inv_freq"], rtol, 0.0), f"{name}: inv_freq")
    ok(close(g["rope"]["attention_scaling"], gold["rope"]["attention_scaling"], rtol, 0.0), f"{name}: attention_scaling")
    ok(0.5 < gold["mean_entropy_nats"] < 4.0, f"{name}: entropy {gold['mean_entropy_nats']} not in (0.5, 4)")


def check_tokenizers():
    for name, enc_cls in (("llama3-rope-bf16", TL.Llama3Encoder), ("mistral-gqa", TL.Llama2Encoder)):
        d = os.path.join(DATA, name)
        if not os.path.exists(os.path.join(d, "tokenizer.json")):
            ok(False, f"{name}: tokenizer.json missing")
            continue
        with open(os.path.join(d, "tokenizer.json"), encoding="utf-8") as f:
            tok = json.load(f)
        with open(os.path.join(d, "tokenizer_examples.json"), encoding="utf-8") as f:
            ex = json.load(f)["examples"]
        n_ids = len(tok["model"]["vocab"]) + sum(1 for t in tok["added_tokens"] if t["content"] not in tok["model"]["vocab"])
        ok(n_ids == 512, f"{name}: tokenizer has {n_ids} ids")
        ids_all = sorted(set(tok["model"]["vocab"].values()) | {t["id"] for t in tok["added_tokens"]})
        ok(ids_all == list(range(512)), f"{name}: ids are 0..511")
        enc = enc_cls(tok)
        for e in ex:
            ok(enc.encode(e["text"]) == e["ids"], f"{name}: encode {e['text']!r}")
            ok(enc.decode(e["ids"], skip_special_tokens=True) == e["text"], f"{name}: decode {e['text']!r}")


def check_regeneration():
    for name in sorted(os.listdir(DATA)):
        d = os.path.join(DATA, name)
        scripts = [s for s in ("make.py", "make_tokenizer.py") if os.path.isfile(os.path.join(d, s))]
        if not scripts or not os.path.isfile(os.path.join(d, "golden.json")):
            continue
        with open(os.path.join(d, "golden.json")) as f:
            if not str(json.load(f).get("source", "")).startswith("plain numpy reference"):
                continue
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copytree(HERE, os.path.join(tmp, "reference"), ignore=shutil.ignore_patterns("__pycache__"))
            os.makedirs(os.path.join(tmp, name))
            for s in scripts:
                shutil.copy(os.path.join(d, s), os.path.join(tmp, name, s))
            for s in scripts:
                r = subprocess.run([sys.executable, os.path.join(tmp, name, s)], capture_output=True, text=True)
                ok(r.returncode == 0, f"{name}: {s} failed: {r.stderr[-500:]}")
            made = sorted(os.listdir(os.path.join(tmp, name)))
            for fn in made:
                if fn in scripts or fn == "__pycache__":
                    continue
                with open(os.path.join(tmp, name, fn), "rb") as f1:
                    new = f1.read()
                path = os.path.join(d, fn)
                old = open(path, "rb").read() if os.path.exists(path) else None
                ok(new == old, f"{name}: regenerated {fn} differs from the committed file")


def check_anchors():
    ev_path = os.path.join(REPO, "data", "tinylm-bytes-5m", "eval.txt")
    if not os.path.exists(ev_path):
        print("skip external anchors: no data/tinylm-bytes-5m/eval.txt")
        return
    ev = open(ev_path, "rb").read()
    gqa = os.path.join(DATA, "tiny-gqa-bf16")
    if os.path.exists(os.path.join(gqa, "golden.json")):
        g = json.load(open(os.path.join(gqa, "golden.json")))
        ids = list(ev[:g["context"]])
        out = R.run_model_dir(gqa, ids)
        nll, _ = R.nll_and_entropy(out["logits"], ids)
        ok(close(nll, g["nll_sum"], 2e-6, 0), f"anchor tiny-gqa-bf16 nll {nll} vs transformers {g['nll_sum']}")
        ok(close(out["logits"][0, :8], g["logits_pos0_first8"], 0, 5e-5), "anchor tiny-gqa-bf16 logits pos 0")
        ok(close(out["logits"][-1, :8], g["logits_last_first8"], 0, 5e-5), "anchor tiny-gqa-bf16 logits last")
        sp = R.Spec(json.load(open(os.path.join(gqa, "config.json"))))
        k = out["key"][1].reshape(len(ids), sp.num_kv_heads, sp.head_dim)[7, 1, :8]
        ok(close(k, g["layer1_key_post_rope_kvhead1_pos7_first8"], 0, 5e-5), "anchor tiny-gqa-bf16 key")
    tl = os.path.join(REPO, "data", "tinylm-bytes-5m")
    if os.path.exists(os.path.join(tl, "golden.json")):
        g = json.load(open(os.path.join(tl, "golden.json")))
        ids = list(ev[:1024])
        out = R.run_model_dir(tl, ids)
        nll, _ = R.nll_and_entropy(out["logits"], ids)
        ok(close(nll, g["windows"][0]["nll_sum"], 2e-6, 0), f"anchor tinylm window 0 nll {nll} vs {g['windows'][0]['nll_sum']}")
        for p, key in ((0, "pos0"), (100, "pos100"), (1023, "last")):
            ok(close(out["logits"][p, :8], g[f"window0_logits_{key}_first8"], 0, 1e-4), f"anchor tinylm logits {key}")
        k = out["key"][0].reshape(1024, 4, 64)[5, 0, :8]
        v = out["value"][0].reshape(1024, 4, 64)[5, 0, :8]
        ok(close(k, g["window0_layer0_key_post_rope_head0_pos5_first8"], 0, 1e-5), "anchor tinylm key")
        ok(close(v, g["window0_layer0_value_head0_pos5_first8"], 0, 1e-5), "anchor tinylm value")


def main():
    quick = "--quick" in sys.argv[1:]
    try:
        R.selftest()
        ok(True, "selftest")
    except AssertionError as e:
        ok(False, f"selftest: {e}")
    fx = fixtures()
    ok(len(fx) >= 8, f"found {len(fx)} reference fixtures")
    for name, gold in fx:
        check_fixture(name, gold)
    check_tokenizers()
    if not quick:
        check_regeneration()
    check_anchors()
    print(f"{passed} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
