#!/usr/bin/python3
"""Independent reference implementation of the `mlp_recipe` task.

Written from examples/user_domain/TASK.md ALONE (plus docs/DOMAINS.md for the JSON protocol),
by a session that never opened recipe.py, evaluate.py, probe.py, self_check.py, README.md or
the textproto of examples/user_domain/.  Its purpose is to cross-check those programs
(see compare.py next to this file).

API:
    evaluate(genes) -> {"val_loss": float, "params": int}
    probe(genes)    -> list[float]
Both raise ValueError for an invalid gene dictionary (TASK.md section 1).

Running this file (`/usr/bin/python3 tests/user_domain/reference_recipe.py`) checks it against
the six reference values of TASK.md section 10 (and the quoted start of probe 1).

AMBIGUITIES IN TASK.md, and what this implementation does about each
(line numbers refer to examples/user_domain/TASK.md as read by this session)

 A1 (l.24, l.33) `hidden` "4, 8, ..., 32" and `epochs` "50, 100, ..., 300": the step is not
    stated; read as steps of 4 and 50 (consistent with "params (17 .. 2241)" l.84 and
    "E_p = epochs / 50 (1 .. 6)" l.170).  Values off the grid are rejected.
 A2 (l.30) `lr` "any double in [1e-3, 1]": no sampling scale (LINEAR or LOG, cf. DOMAINS.md)
    is given.  Irrelevant for evaluation; compare.py draws lr log-uniformly.
 A3 (l.41) "a JSON number with an integral value such as 32.0 is accepted": taken to mean
    the value is then used as the integer 32.  Booleans are rejected for integer genes and
    for `lr`.
 A4 (l.42) "accepted within a relative slack of 1e-12 outside [1e-3, 1]": read as
    1e-3*(1-1e-12) <= lr <= 1*(1+1e-12).  NaN/inf lr rejected.
 A5 (l.39-40) "every active gene is present": a missing *inactive* gene is fine; a present
    inactive gene is rejected even if its value is the neutral one (e.g. momentum "0" with sgd).
 A6 (l.170) `E_p = epochs / 50`, `b_p = B / 32` are written as "/" (true division) but are
    used as counts; taken as exact integer division (epochs is a multiple of 50).
 A7 (l.102) "the batch loss is mean(l)" and l.164 "val_loss = mean(l)": taken literally as
    np.mean of the per-point l, with l computed as written, left to right:
    (np.maximum(s, 0.0) + np.log1p(np.exp(-np.abs(s)))) - y * s.
 A8 (l.109-113) "n" in `d = ((p - y) / n)` is the number of rows of the batch (a Python int);
    the gradient list G is computed completely from the pre-step P (l.112 states this for
    W_{k+1}; the same is assumed for everything).  For tanh, act'(z_k) uses a = a_k, the
    stored forward activation (equal to act(z_k) recomputed).
 A9 (l.122) `norm = math.sqrt(sum_i float(...))`: accumulated left to right starting from
    0.0 (Python's sum starts at int 0; 0 + x == x exactly, so it does not matter).
 A10 (l.127, l.130-135) operator grouping is Python's: `p * (1.0 - lr * wd)`,
    `p - lr * g` = p - (lr*g), `lr * m_hat / (np.sqrt(s_hat) + 1e-8)` = ((lr*m_hat)/(...)).
    `0.9 ** t`, `0.999 ** t` are Python float powers with the int step counter t.
 A11 (l.126-128) the decay step is done on the *local* copies p, g before the update, in the
    order weight-decay-then-update; for `decoupled` the optimizer uses the (un-decayed)
    gradient g and the decayed p.  Clipping (step 1) precedes both (l.121).
 A12 (l.150-153) when b < n but n is not a multiple of b the spec's batch list "k = 0, b, ...,
    n - b" would drop a remainder; never happens here (512/32, 16/1), implemented as
    range(0, n - b + 1, b).  "b >= n" is the full-batch branch (512 on 512 points, 16 on 16).
 A13 (l.164-165) "If val_loss is not finite or exceeds 1000": "exceeds" read as > 1000.0
    (a val_loss of exactly 1000.0 is kept, which gives the same number anyway).
 A14 (l.174-176) probe: "the 8 logits s of x_peval" are the forward pass at the current P
    after the epoch's last step, taken before anything else; the clamp maps +inf to 1e30 and
    -inf to -1e30 and NaN to 2e30; `float(depth)`, `float(hidden)` are not clamped (finite).
 A15 (l.171-172) the probe "same seeds for initialisation and shuffling" means a fresh
    default_rng(1000+init_seed) / default_rng(2000+init_seed) for the probe's training, not
    a continuation of the evaluation's generators.
 A16 (l.207-217) "stable" recipes are not defined by a rule, only by example ("Adam or SGD
    with lr above ~0.2 for many epochs" are chaotic).  compare.py identifies them empirically
    with the very test l.209-212 describes: re-run this reference with the sigmoid replaced by
    0.5 * (1 + tanh(s / 2)); a recipe is stable when val_loss moves by <= 1e-9 relative
    (and its probe is stable when every output moves by <= 1e-9 relative).  The function
    `evaluate(genes, sigmoid="tanh")` / `probe(genes, sigmoid="tanh")` gives that variant.
 A17 (l.104 vs l.210) the tanh-based sigmoid variant is a check only; it changes
    p but not the loss expression l, which stays as in section 4.
 A18 (l.67-70) the validation set is drawn from the same generator right after the training
    set; the probe eval set likewise after the probe train set (explicit, noted only because
    the y labels of x_peval still consume call 3 of spirals).
"""

import math

import numpy as np

# --------------------------------------------------------------------------- genes (sec. 1)

HIDDEN_VALUES = tuple(range(4, 33, 4))
DEPTH_VALUES = (1, 2, 3)
EPOCH_VALUES = tuple(range(50, 301, 50))
INIT_SEED_VALUES = (0, 1, 2, 3)

# name -> (kind, allowed, (parent, parent values) or None), in declaration order
GENE_SPACE = [
    ("hidden", "int", HIDDEN_VALUES, None),
    ("depth", "int", DEPTH_VALUES, None),
    ("activation", "str", ("relu", "leaky_relu", "tanh"), None),
    ("negative_slope", "str", ("0", "0.01", "0.1"), ("activation", ("leaky_relu",))),
    ("optimizer", "str", ("sgd", "momentum", "adam"), None),
    ("momentum", "str", ("0", "0.5", "0.9"), ("optimizer", ("momentum",))),
    ("lr", "float", (1e-3, 1.0), None),
    ("weight_decay", "str", ("0", "1e-4", "1e-3"), None),
    ("decay_kind", "str", ("l2", "decoupled"), None),
    ("epochs", "int", EPOCH_VALUES, None),
    ("batch", "str", ("32", "512"), None),
    ("shuffle", "str", ("yes", "no"), None),
    ("init_seed", "int", INIT_SEED_VALUES, None),
    ("grad_clip", "str", ("none", "1", "100"), None),
]
_GENE_NAMES = [g[0] for g in GENE_SPACE]


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def validate(genes):
    """Returns a normalised copy of genes (ints as int, lr as float) or raises ValueError."""
    if not isinstance(genes, dict):
        raise ValueError("genes must be an object")
    for name in genes:
        if name not in _GENE_NAMES:
            raise ValueError("unknown gene %r" % (name,))
    out = {}
    for name, kind, allowed, cond in GENE_SPACE:
        active = cond is None or (cond[0] in out and out[cond[0]] in cond[1])
        if not active:
            if name in genes:
                raise ValueError("gene %r is inactive but present" % name)
            continue
        if name not in genes:
            raise ValueError("active gene %r is missing" % name)
        v = genes[name]
        if kind == "int":
            if not _is_number(v) or not math.isfinite(v) or float(v) != math.floor(v):
                raise ValueError("gene %r must be an integer, got %r" % (name, v))
            v = int(v)
            if v not in allowed:
                raise ValueError("gene %r out of range: %r" % (name, v))
        elif kind == "float":
            if not _is_number(v) or not math.isfinite(v):
                raise ValueError("gene %r must be a number, got %r" % (name, v))
            lo, hi = allowed
            if not (lo * (1 - 1e-12) <= v <= hi * (1 + 1e-12)):
                raise ValueError("gene %r out of range: %r" % (name, v))
            v = float(v)
        else:
            if not isinstance(v, str) or v not in allowed:
                raise ValueError("gene %r must be one of %r, got %r" % (name, allowed, v))
        out[name] = v
    return out


class _Recipe:
    def __init__(self, genes):
        g = validate(genes)
        self.hidden = g["hidden"]
        self.depth = g["depth"]
        self.activation = g["activation"]
        self.slope = float(g["negative_slope"]) if "negative_slope" in g else 0.0
        self.optimizer = g["optimizer"]
        self.mu = float(g["momentum"]) if "momentum" in g else None
        self.lr = g["lr"]
        self.wd = float(g["weight_decay"])
        self.decay_kind = g["decay_kind"]
        self.epochs = g["epochs"]
        self.B = int(g["batch"])
        self.shuffle = g["shuffle"] == "yes"
        self.init_seed = g["init_seed"]
        self.clip = None if g["grad_clip"] == "none" else float(g["grad_clip"])


# ---------------------------------------------------------------------------- data (sec. 2)

def spirals(rng, n):
    y = (np.arange(n) % 2).astype(np.float64)
    u = rng.random(n)
    r = 0.1 + 0.9 * u
    theta = 3.0 * np.pi * u + np.pi * y
    x = np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1)
    x = x + 0.04 * rng.standard_normal((n, 2))
    flip = rng.random(n) < 0.05
    y = np.where(flip, 1.0 - y, y)
    return x, y


def task_data():
    rng = np.random.default_rng(7)
    x_train, y_train = spirals(rng, 512)
    x_val, y_val = spirals(rng, 256)
    return x_train, y_train, x_val, y_val


def probe_data():
    rng = np.random.default_rng(11)
    x_ptrain, y_ptrain = spirals(rng, 16)
    x_peval, y_peval = spirals(rng, 8)
    return x_ptrain, y_ptrain, x_peval, y_peval


# ------------------------------------------------------------------------- network (sec. 3)

def init_params(R):
    rng = np.random.default_rng(1000 + R.init_seed)
    sizes = [2] + [R.hidden] * R.depth + [1]
    P = []
    for k in range(1, R.depth + 2):
        fan_in, fan_out = sizes[k - 1], sizes[k]
        W = rng.standard_normal((fan_in, fan_out)) * math.sqrt(2.0 / fan_in)
        b = np.zeros(fan_out)
        P.append(W)
        P.append(b)
    return P


def count_params(hidden, depth):
    return 3 * hidden + (depth - 1) * (hidden * hidden + hidden) + hidden + 1


def _act(R, z):
    if R.activation == "relu":
        return np.where(z > 0, z, 0.0)
    if R.activation == "leaky_relu":
        return np.where(z > 0, z, R.slope * z) + 0.0
    return np.tanh(z)


def _act_deriv(R, z, a):
    if R.activation == "relu":
        return np.where(z > 0, 1.0, 0.0)
    if R.activation == "leaky_relu":
        return np.where(z > 0, 1.0, R.slope)
    return 1.0 - a * a


def forward(R, P, x):
    """Returns (logits s, list of z_k, list of a_k with a_0 = x)."""
    a = x
    zs, acts = [], [x]
    for k in range(1, R.depth + 1):
        W, b = P[2 * (k - 1)], P[2 * (k - 1) + 1]
        z = a @ W + b
        a = _act(R, z)
        zs.append(z)
        acts.append(a)
    s = (a @ P[2 * R.depth] + P[2 * R.depth + 1])[:, 0]
    return s, zs, acts


# -------------------------------------------------------------------- loss, grads (sec. 4)

def loss_terms(s, y):
    return np.maximum(s, 0.0) + np.log1p(np.exp(-np.abs(s))) - y * s


def sigmoid(s, variant="exact"):
    if variant == "tanh":  # the perturbation of TASK.md "Reproducibility" (stability test only)
        return 0.5 * (1 + np.tanh(s / 2))
    e = np.exp(-np.abs(s))
    return np.where(s >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def gradients(R, P, x, y, variant):
    n = x.shape[0]
    s, zs, acts = forward(R, P, x)
    p = sigmoid(s, variant)
    G = [None] * len(P)
    d = ((p - y) / n)[:, None]
    G[2 * R.depth] = acts[R.depth].T @ d
    G[2 * R.depth + 1] = d.sum(axis=0)
    for k in range(R.depth, 0, -1):
        W_next = P[2 * k]  # W_{k+1}
        d = (d @ W_next.T) * _act_deriv(R, zs[k - 1], acts[k])
        G[2 * (k - 1)] = acts[k - 1].T @ d
        G[2 * (k - 1) + 1] = d.sum(axis=0)
    return G


# -------------------------------------------------------------------- one step (sec. 5)

class _Optimizer:
    def __init__(self, R, P):
        self.R = R
        self.t = 0
        if R.optimizer == "momentum":
            self.v = [np.zeros(p.shape) for p in P]
        elif R.optimizer == "adam":
            self.m = [np.zeros(p.shape) for p in P]
            self.s = [np.zeros(p.shape) for p in P]

    def step(self, P, G):
        R = self.R
        self.t += 1
        t = self.t
        if R.clip is not None:
            norm = math.sqrt(sum(float(np.sum(Gi * Gi)) for Gi in G))
            if norm > R.clip:
                scale = R.clip / norm
                G = [Gi * scale for Gi in G]
        lr, wd = R.lr, R.wd
        for i in range(len(P)):
            p, g = P[i], G[i]
            if wd != 0 and i % 2 == 0:
                if R.decay_kind == "l2":
                    g = g + wd * p
                else:
                    p = p * (1.0 - lr * wd)
            if R.optimizer == "sgd":
                p = p - lr * g
            elif R.optimizer == "momentum":
                self.v[i] = R.mu * self.v[i] + g
                p = p - lr * self.v[i]
            else:
                self.m[i] = 0.9 * self.m[i] + (1.0 - 0.9) * g
                self.s[i] = 0.999 * self.s[i] + (1.0 - 0.999) * (g * g)
                m_hat = self.m[i] / (1.0 - 0.9 ** t)
                s_hat = self.s[i] / (1.0 - 0.999 ** t)
                p = p - lr * m_hat / (np.sqrt(s_hat) + 1e-8)
            P[i] = p


# ------------------------------------------------------------------------ training (sec. 6)

def train(R, x, y, E, b, variant="exact", after_epoch=None):
    n = x.shape[0]
    P = init_params(R)
    opt = _Optimizer(R, P)
    srng = np.random.default_rng(2000 + R.init_seed)
    for _ in range(E):
        if b >= n:
            batches = [np.arange(n)]
        else:
            order = srng.permutation(n) if R.shuffle else np.arange(n)
            batches = [order[k:k + b] for k in range(0, n - b + 1, b)]
        for idx in batches:
            G = gradients(R, P, x[idx], y[idx], variant)
            opt.step(P, G)
        if after_epoch is not None:
            after_epoch(P)
    return P


# ---------------------------------------------------------------- objectives, probe (7, 8)

def evaluate(genes, sigmoid="exact"):
    with np.errstate(all="ignore"):
        R = _Recipe(genes)
        x_train, y_train, x_val, y_val = task_data()
        P = train(R, x_train, y_train, R.epochs, R.B, sigmoid)
        s, _, _ = forward(R, P, x_val)
        val_loss = float(np.mean(loss_terms(s, y_val)))
    if not math.isfinite(val_loss) or val_loss > 1000:
        val_loss = 1000.0
    return {"val_loss": val_loss, "params": int(count_params(R.hidden, R.depth))}


def _finite(v):
    v = float(v)
    if math.isnan(v):
        return 2e30
    return min(max(v, -1e30), 1e30)


def probe(genes, sigmoid="exact"):
    R = _Recipe(genes)
    x_ptrain, y_ptrain, x_peval, _ = probe_data()
    E_p = R.epochs // 50
    b_p = R.B // 32
    outputs = [float(R.depth), float(R.hidden)]

    def record(P):
        s, _, _ = forward(R, P, x_peval)
        outputs.extend(_finite(v) for v in s)

    with np.errstate(all="ignore"):
        train(R, x_ptrain, y_ptrain, E_p, b_p, sigmoid, after_epoch=record)
    return outputs


# ------------------------------------------------------------------ reference values (10)

REFERENCE = [
    ({"hidden": 16, "depth": 2, "activation": "relu", "optimizer": "adam", "lr": 0.01,
      "weight_decay": "1e-4", "decay_kind": "decoupled", "epochs": 100, "batch": "32",
      "shuffle": "yes", "init_seed": 0, "grad_clip": "none"},
     0.2687594686478699, 337, 18, 0.15129878792187537),
    ({"hidden": 32, "depth": 3, "activation": "tanh", "optimizer": "momentum", "momentum": "0.9",
      "lr": 0.05, "weight_decay": "1e-3", "decay_kind": "l2", "epochs": 150, "batch": "32",
      "shuffle": "no", "init_seed": 1, "grad_clip": "1"},
     0.2559731623780357, 2241, 26, 1.3461483724963912),
    ({"hidden": 24, "depth": 2, "activation": "leaky_relu", "negative_slope": "0.1",
      "optimizer": "sgd", "lr": 0.3, "weight_decay": "0", "decay_kind": "l2", "epochs": 200,
      "batch": "512", "shuffle": "yes", "init_seed": 2, "grad_clip": "100"},
     0.6389756703703923, 697, 34, -0.08427744772141751),
    ({"hidden": 8, "depth": 1, "activation": "tanh", "optimizer": "adam", "lr": 0.003,
      "weight_decay": "1e-3", "decay_kind": "l2", "epochs": 50, "batch": "512", "shuffle": "no",
      "init_seed": 3, "grad_clip": "1"},
     0.6700179669539658, 33, 10, -0.09391973345479765),
    ({"hidden": 32, "depth": 2, "activation": "relu", "optimizer": "momentum", "momentum": "0.5",
      "lr": 0.02, "weight_decay": "1e-4", "decay_kind": "decoupled", "epochs": 100,
      "batch": "32", "shuffle": "yes", "init_seed": 1, "grad_clip": "none"},
     0.6442324950948164, 1185, 18, 0.08182024832289908),
    ({"hidden": 12, "depth": 3, "activation": "leaky_relu", "negative_slope": "0.01",
      "optimizer": "adam", "lr": 0.02, "weight_decay": "0", "decay_kind": "decoupled",
      "epochs": 300, "batch": "32", "shuffle": "yes", "init_seed": 0, "grad_clip": "1"},
     0.4050289115251323, 361, 50, 1.1823083575341085),
]
PROBE1_START = [2.0, 16.0, 0.4951867475329371, 0.25623886028510195]


def _self_test():
    ok = True
    for i, (genes, vl, params, plen, plast) in enumerate(REFERENCE, 1):
        r = evaluate(genes)
        pr = probe(genes)
        good = (r["params"] == params and len(pr) == plen
                and math.isclose(r["val_loss"], vl, rel_tol=1e-9, abs_tol=0.0)
                and math.isclose(pr[-1], plast, rel_tol=1e-9, abs_tol=0.0))
        if i == 1:
            good = good and all(math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0)
                                for a, b in zip(pr[:4], PROBE1_START))
        bit = r["val_loss"] == vl and pr[-1] == plast
        print("#%d %s val_loss %r (want %r) params %d (want %d) probe len %d (want %d) last %r "
              "(want %r)%s" % (i, "OK " if good else "BAD", r["val_loss"], vl, r["params"], params,
                               len(pr), plen, pr[-1], plast, " bit-identical" if bit else ""))
        ok = ok and good
    print("reference values:", "all agree" if ok else "DISAGREE")
    return ok


if __name__ == "__main__":
    import sys
    sys.exit(0 if _self_test() else 1)
