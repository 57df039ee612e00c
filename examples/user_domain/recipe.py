#!/usr/bin/python3
"""The `mlp_recipe` user domain: training recipes for a small numpy MLP on two noisy spirals.

A candidate is a recipe (architecture + training) given as a dict of genes, exactly as the
engine sends them (docs/DOMAINS.md, protocol `fecsearch.domain.v1`; inactive conditional genes
absent). `evaluate(genes)` trains the network on 512 seeded points and returns the mean binary
cross-entropy on 256 validation points and the number of trainable parameters. `probe(genes)`
runs the same recipe on a tiny fixed probe set (16 training points, 8 probe points, 1/50 of the
epochs, 1/32 of the batch) and returns the network's logits on the probe points after every
probe epoch: what the engine's functional hash keys on.

Everything is seeded and offline; TASK.md specifies the computation independently of this file.
Recipes that are the same function (momentum 0 and sgd, leaky_relu with slope 0 and relu, any
decay_kind with weight_decay 0, any shuffle with full batches, and grad_clip "100" or "none"
whenever it never triggers) give bit-identical floats, in the probe and in the evaluation.

Measured on one core (Debian numpy 1.24.2, netlib BLAS; README.md has the table): over 60
random recipes evaluate takes 16 ms - 2.4 s (median 0.46 s), the probe 0.3-22 ms (median 3.2 ms),
at most 2.1 % of its own evaluation (median 0.95 %).
"""
import json
import math
import sys
import time

import numpy as np

DOMAIN = "mlp_recipe"

# (name, kind, spec, active_if): kind int -> (min, max, step); float -> (min, max); cat -> values.
GENES = [
    ("hidden", "int", (4, 32, 4), None),
    ("depth", "int", (1, 3, 1), None),
    ("activation", "cat", ("relu", "leaky_relu", "tanh"), None),
    ("negative_slope", "cat", ("0", "0.01", "0.1"), ("activation", ("leaky_relu",))),
    ("optimizer", "cat", ("sgd", "momentum", "adam"), None),
    ("momentum", "cat", ("0", "0.5", "0.9"), ("optimizer", ("momentum",))),
    ("lr", "float", (1e-3, 1.0), None),
    ("weight_decay", "cat", ("0", "1e-4", "1e-3"), None),
    ("decay_kind", "cat", ("l2", "decoupled"), None),
    ("epochs", "int", (50, 300, 50), None),
    ("batch", "cat", ("32", "512"), None),
    ("shuffle", "cat", ("yes", "no"), None),
    ("init_seed", "int", (0, 3, 1), None),
    ("grad_clip", "cat", ("none", "1", "100"), None),
]
FLOAT_SLACK = 1e-12          # relative tolerance on float_range bounds (LOG sampling rounding)

DATA_SEED, PROBE_SEED = 7, 11
N_TRAIN, N_VAL = 512, 256
N_PROBE_TRAIN, N_PROBE_EVAL = 16, 8
PROBE_EPOCH_DIVISOR, PROBE_BATCH_DIVISOR = 50, 32   # probe epochs = epochs/50, batch = batch/32
INIT_SEED_BASE, SHUFFLE_SEED_BASE = 1000, 2000
NOISE, LABEL_FLIP = 0.04, 0.05
BETA1, BETA2, ADAM_EPS = 0.9, 0.999, 1e-8
DIVERGED_LOSS = 1000.0       # val_loss when the mean cross-entropy is not finite or exceeds it
PROBE_CLAMP, PROBE_NAN = 1e30, 2e30   # JSON has no NaN/Infinity


class GeneError(ValueError):
    """The candidate's genes do not describe a recipe of this domain."""


# ----------------------------------------------------------------------------- genes


def _active(genes, cond):
    """Whether a gene with condition `cond` (None or (parent, values)) is active."""
    return cond is None or (cond[0] in genes and genes[cond[0]] in cond[1])


def _check_value(name, kind, spec, value):
    """One gene's JSON value, checked and converted (int, float or str)."""
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise GeneError(f"gene {name!r} must be an integer, got {value!r}")
        if isinstance(value, float):
            if not value.is_integer():
                raise GeneError(f"gene {name!r} must be an integer, got {value!r}")
            value = int(value)
        lo, hi, step = spec
        if not lo <= value <= hi or (value - lo) % step:
            raise GeneError(f"gene {name!r} = {value} is not in {lo}..{hi} step {step}")
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise GeneError(f"gene {name!r} must be a number, got {value!r}")
        value = float(value)
        lo, hi = spec
        if not (math.isfinite(value) and lo * (1 - FLOAT_SLACK) <= value <= hi * (1 + FLOAT_SLACK)):
            raise GeneError(f"gene {name!r} = {value!r} is not in [{lo}, {hi}]")
        return value
    if not isinstance(value, str) or value not in spec:
        raise GeneError(f"gene {name!r} must be one of {list(spec)}, got {value!r}")
    return value


def validate(genes):
    """Checked copy of `genes`; raises GeneError for unknown, missing, mistyped, out-of-range
    or inactive-but-present genes."""
    if not isinstance(genes, dict):
        raise GeneError("genes must be a JSON object")
    known = {g[0] for g in GENES}
    unknown = sorted(set(genes) - known)
    if unknown:
        raise GeneError(f"unknown gene(s) {unknown}")
    out = {}
    for name, kind, spec, cond in GENES:
        if not _active(out, cond):
            if name in genes:
                raise GeneError(f"gene {name!r} is inactive ({cond[0]} = {out.get(cond[0])!r}) "
                                f"and must be absent")
            continue
        if name not in genes:
            raise GeneError(f"gene {name!r} is missing")
        out[name] = _check_value(name, kind, spec, genes[name])
    return out


def recipe_of(genes):
    """The numeric recipe a validated gene dict stands for."""
    return {
        "hidden": genes["hidden"], "depth": genes["depth"], "activation": genes["activation"],
        "slope": float(genes.get("negative_slope", "0")),
        "optimizer": genes["optimizer"], "mu": float(genes.get("momentum", "0")),
        "lr": genes["lr"], "wd": float(genes["weight_decay"]), "decay_kind": genes["decay_kind"],
        "epochs": genes["epochs"], "batch": int(genes["batch"]), "shuffle": genes["shuffle"] == "yes",
        "init_seed": genes["init_seed"],
        "clip": None if genes["grad_clip"] == "none" else float(genes["grad_clip"]),
    }


# ----------------------------------------------------------------------------- data


def spirals(rng, n):
    """n points of two interleaved noisy spirals (labels alternate 0,1,...; 5 % flipped)."""
    y = (np.arange(n) % 2).astype(np.float64)
    u = rng.random(n)
    r = 0.1 + 0.9 * u
    theta = 3.0 * np.pi * u + np.pi * y
    x = np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1)
    x = x + NOISE * rng.standard_normal((n, 2))
    flip = rng.random(n) < LABEL_FLIP
    return x, np.where(flip, 1.0 - y, y)


def datasets(seed, n_train, n_eval):
    """(x_train, y_train, x_eval, y_eval) drawn in that order from default_rng(seed)."""
    rng = np.random.default_rng(seed)
    xt, yt = spirals(rng, n_train)
    xe, ye = spirals(rng, n_eval)
    return xt, yt, xe, ye


# ----------------------------------------------------------------------------- network


def init_params(hidden, depth, init_seed):
    """[W1, b1, ..., W_out, b_out]: He-normal weights (fan_in x fan_out), zero biases."""
    rng = np.random.default_rng(INIT_SEED_BASE + init_seed)
    sizes = [2] + [hidden] * depth + [1]
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        params.append(rng.standard_normal((fan_in, fan_out)) * math.sqrt(2.0 / fan_in))
        params.append(np.zeros(fan_out))
    return params


def count_params(hidden, depth):
    """Trainable parameters of the 2 -> hidden^depth -> 1 network."""
    return 3 * hidden + (depth - 1) * (hidden * hidden + hidden) + hidden + 1


def activate(z, activation, slope):
    """The hidden activation; +0.0 turns the -0.0 of 0*z into +0.0 (relu == leaky slope 0)."""
    if activation == "relu":
        return np.where(z > 0, z, 0.0)
    if activation == "leaky_relu":
        return np.where(z > 0, z, slope * z) + 0.0
    return np.tanh(z)


def activation_grad(z, a, activation, slope):
    """d activation / dz at z (a = activation(z))."""
    if activation == "relu":
        return np.where(z > 0, 1.0, 0.0)
    if activation == "leaky_relu":
        return np.where(z > 0, 1.0, slope)
    return 1.0 - a * a


def forward(params, x, activation, slope):
    """(logits of shape (n,), per-layer (z, a) cache)."""
    a, cache = x, []
    for k in range(0, len(params) - 2, 2):
        z = a @ params[k] + params[k + 1]
        a_next = activate(z, activation, slope)
        cache.append((a, z, a_next))
        a = a_next
    cache.append((a, None, None))
    return (a @ params[-2] + params[-1])[:, 0], cache


def sigmoid(z):
    """Logistic function without overflow."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def bce(logits, y):
    """Mean binary cross-entropy (nats) from logits: softplus(z) - y z."""
    return float(np.mean(np.maximum(logits, 0.0) + np.log1p(np.exp(-np.abs(logits))) - y * logits))


def gradients(params, x, y, activation, slope):
    """Gradients of the batch-mean cross-entropy, in the order of params."""
    logits, cache = forward(params, x, activation, slope)
    delta = ((sigmoid(logits) - y) / x.shape[0])[:, None]
    grads = [None] * len(params)
    a_in = cache[-1][0]
    grads[-2] = a_in.T @ delta
    grads[-1] = delta.sum(axis=0)
    for k in range(len(params) - 4, -1, -2):
        a_prev, z, a = cache[k // 2]
        delta = (delta @ params[k + 2].T) * activation_grad(z, a, activation, slope)
        grads[k] = a_prev.T @ delta
        grads[k + 1] = delta.sum(axis=0)
    return grads


# ----------------------------------------------------------------------------- training


def clip(grads, max_norm):
    """Global-norm clipping: scale every gradient by max_norm/norm when norm > max_norm."""
    if max_norm is None:
        return grads
    norm = math.sqrt(sum(float(np.sum(g * g)) for g in grads))
    if not norm > max_norm:
        return grads
    scale = max_norm / norm
    return [g * scale for g in grads]


class Optimizer:
    """sgd, momentum (heavy ball, v = mu v + g) or adam, with L2 or decoupled weight decay on
    the weight matrices (even indices of params), never on the biases."""

    def __init__(self, r, params):
        self.r, self.t = r, 0
        self.state = [np.zeros_like(p) for p in params]
        self.state2 = [np.zeros_like(p) for p in params]

    def step(self, params, grads):
        r = self.r
        lr, wd = r["lr"], r["wd"]
        self.t += 1
        for i, (p, g) in enumerate(zip(params, grads)):
            is_weight = i % 2 == 0
            if wd != 0.0 and is_weight:
                if r["decay_kind"] == "l2":
                    g = g + wd * p
                else:
                    p = p * (1.0 - lr * wd)
            if r["optimizer"] == "sgd":
                p = p - lr * g
            elif r["optimizer"] == "momentum":
                self.state[i] = r["mu"] * self.state[i] + g
                p = p - lr * self.state[i]
            else:
                self.state[i] = BETA1 * self.state[i] + (1.0 - BETA1) * g
                self.state2[i] = BETA2 * self.state2[i] + (1.0 - BETA2) * (g * g)
                m_hat = self.state[i] / (1.0 - BETA1 ** self.t)
                v_hat = self.state2[i] / (1.0 - BETA2 ** self.t)
                p = p - lr * m_hat / (np.sqrt(v_hat) + ADAM_EPS)
            params[i] = p


def batches(n, batch, shuffle, rng):
    """Index arrays of one epoch: the stored order when batch >= n (shuffle has no effect and
    draws nothing), else consecutive slices of a fresh permutation (shuffle) or of 0..n-1."""
    if batch >= n:
        return [np.arange(n)]
    order = rng.permutation(n) if shuffle else np.arange(n)
    return [order[k:k + batch] for k in range(0, n, batch)]


def train(r, x, y, epochs, batch, snapshot=None):
    """Trained params; calls snapshot(params) after every epoch when given."""
    params = init_params(r["hidden"], r["depth"], r["init_seed"])
    opt = Optimizer(r, params)
    rng = np.random.default_rng(SHUFFLE_SEED_BASE + r["init_seed"])
    for _ in range(epochs):
        for idx in batches(x.shape[0], batch, r["shuffle"], rng):
            grads = gradients(params, x[idx], y[idx], r["activation"], r["slope"])
            opt.step(params, clip(grads, r["clip"]))
        if snapshot is not None:
            snapshot(params)
    return params


# ----------------------------------------------------------------------------- entry points

_DATA = {}


def _data(key):
    """Cached datasets: 'eval' (512/256 from DATA_SEED) or 'probe' (16/8 from PROBE_SEED)."""
    if key not in _DATA:
        _DATA[key] = (datasets(DATA_SEED, N_TRAIN, N_VAL) if key == "eval"
                      else datasets(PROBE_SEED, N_PROBE_TRAIN, N_PROBE_EVAL))
    return _DATA[key]


def evaluate(genes):
    """{'val_loss': mean validation cross-entropy (nats, capped at 1000), 'params': int}."""
    r = recipe_of(validate(genes))
    xt, yt, xv, yv = _data("eval")
    with np.errstate(all="ignore"):
        params = train(r, xt, yt, r["epochs"], r["batch"])
        loss = bce(forward(params, xv, r["activation"], r["slope"])[0], yv)
    if not (math.isfinite(loss) and loss <= DIVERGED_LOSS):
        loss = DIVERGED_LOSS
    return {"val_loss": loss, "params": count_params(r["hidden"], r["depth"])}


def _json_number(v):
    """A probe output as a finite JSON number (clamped; NaN as PROBE_NAN)."""
    if math.isnan(v):
        return PROBE_NAN
    return min(max(v, -PROBE_CLAMP), PROBE_CLAMP)


def probe(genes):
    """[depth, hidden, then the 8 probe logits after each of the epochs/50 probe epochs]."""
    r = recipe_of(validate(genes))
    xt, yt, xe, _ = _data("probe")
    out = [float(r["depth"]), float(r["hidden"])]

    def snapshot(params):
        out.extend(float(v) for v in forward(params, xe, r["activation"], r["slope"])[0])

    with np.errstate(all="ignore"):
        train(r, xt, yt, r["epochs"] // PROBE_EPOCH_DIVISOR, r["batch"] // PROBE_BATCH_DIVISOR,
              snapshot)
    return [_json_number(v) for v in out]


# ----------------------------------------------------------------------------- protocol

PROTOCOL = "fecsearch.domain.v1"


class RequestError(ValueError):
    """The request itself is malformed (not a candidate problem): exit 2."""


def parse_request(text, kind):
    """The genes of a `kind` request ('evaluate' or 'probe'); raises RequestError."""
    try:
        request = json.loads(text)
    except ValueError as e:
        raise RequestError(f"stdin is not JSON: {e}") from None
    if not isinstance(request, dict):
        raise RequestError("the request must be a JSON object")
    if request.get("protocol") != PROTOCOL:
        raise RequestError(f"protocol must be {PROTOCOL!r}, got {request.get('protocol')!r}")
    if request.get("kind") != kind:
        raise RequestError(f"kind must be {kind!r}, got {request.get('kind')!r}")
    if "domain" in request and request["domain"] != DOMAIN:
        raise RequestError(f"domain must be {DOMAIN!r}, got {request['domain']!r}")
    if not isinstance(request.get("genes"), dict):
        raise RequestError("the request has no 'genes' object")
    return request["genes"]


def respond(kind, genes):
    """The response object for validated-or-not genes: outputs/objectives, or error."""
    start = time.perf_counter()
    try:
        if kind == "probe":
            return {"protocol": PROTOCOL, "outputs": probe(genes)}
        objectives = evaluate(genes)
    except GeneError as e:
        return {"protocol": PROTOCOL, "error": str(e)}
    return {"protocol": PROTOCOL, "objectives": objectives,
            "cost_seconds": time.perf_counter() - start}


def main(kind, name):
    """Command-line entry point of evaluate.py / probe.py: stdin request, stdout response."""
    try:
        genes = parse_request(sys.stdin.read(), kind)
    except RequestError as e:
        print(f"{name}: {e}", file=sys.stderr)
        return 2
    sys.stdout.write(json.dumps(respond(kind, genes), allow_nan=False) + "\n")
    return 0
