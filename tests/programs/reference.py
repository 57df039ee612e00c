#!/usr/bin/env python3
"""Independent reference interpreter for the `programs` domain (docs/PROGRAMS.md).

Written from docs/PROGRAMS.md (sections 2, 3, 4 and 6) alone, without reading the C++
executor. Plain Python floats (IEEE double, round to nearest) and plain loops in the
summation order the doc states, so the rounding matches a straightforward C++ loop that
starts its accumulators at +0.0 and does not contract a*b+c into an FMA.

The math module raises where C returns IEEE specials; the c_* wrappers below restore the
C library's results (log(0) = -inf, log(-1) = nan, sqrt(-1) = nan, exp(1000) = inf,
sin(inf) = nan, asin(2) = nan, x/0 = +-inf, 0/0 = nan).

Program JSON: {"setup": [instr...], "predict": [...], "learn": [...]}, each instruction
{"op": "SCALAR_SUM", "in1": int, "in2": int, "out": int, "d": float, "f0": float,
"f1": float, "f2": float}; missing fields are 0.

CLI (see `python3 reference.py -h`):
  reference.py rng SEED [N]                         splitmix64 next()/real()/gaussian(0,1)
  reference.py task KIND SEED F NTRAIN NVALID       generated data as JSON
  reference.py fitness PROGRAM.json [options]       mean fitness over tasks
  reference.py trace PROGRAM.json [options]         register-file trace of one task
"""

import argparse
import copy
import json
import math
import sys

MASK64 = 0xFFFFFFFFFFFFFFFF
EXECUTOR_SEED_XOR = 0x5851F42D4C957F2D
TWO_POW_M53 = 2.0 ** -53

LINEAR = "SCALAR_LINEAR_REGRESSION"
NONLINEAR = "SCALAR_NONLINEAR_REGRESSION"
CLASSIFICATION = "BINARY_CLASSIFICATION"
TASK_KINDS = (LINEAR, NONLINEAR, CLASSIFICATION)

# Knobs for the sensitivity checks of make_golden.py (the defaults are the reading the
# golden files use; see CARD.md):
#  ACC0: the starting value of every sum. +0.0 is `double acc = 0.0; acc += ...`; -0.0
#        behaves exactly like starting from the first term (-0.0 + x == x for every x).
#  GAUSSIAN_GROUPING: "left" = mean + ((sd * sqrt(...)) * cos(...)) as written;
#        "right" = mean + sd * (sqrt(...) * cos(...)).
#  FITNESS_GROUPING: "left" = 1 - (2/pi) * atan(r) as written; "alt" = 1 - 2 * atan(r) / pi.
ACC0 = 0.0
GAUSSIAN_GROUPING = "left"
FITNESS_GROUPING = "left"

INF = float("inf")
NAN = float("nan")


# --------------------------------------------------------------------------------------
# C library semantics for the math functions.

def c_div(a, b):
    try:
        return a / b
    except ZeroDivisionError:
        if a != a or a == 0.0:
            return NAN
        neg = (math.copysign(1.0, a) < 0) != (math.copysign(1.0, b) < 0)
        return -INF if neg else INF


def c_sqrt(x):
    if x != x:
        return NAN
    if x < 0.0:
        return NAN
    return math.sqrt(x)  # sqrt(-0.0) = -0.0, sqrt(inf) = inf


def c_log(x):
    if x != x:
        return NAN
    if x == 0.0:
        return -INF  # log(+-0) = -inf (pole)
    if x < 0.0:
        return NAN
    return math.log(x)  # log(inf) = inf


def c_exp(x):
    try:
        return math.exp(x)
    except OverflowError:
        return INF


def _c_trig(fn):
    def wrapped(x):
        try:
            return fn(x)
        except (ValueError, OverflowError):
            return NAN  # sin/cos/tan of +-inf, asin/acos outside [-1, 1]
    return wrapped


c_sin = _c_trig(math.sin)
c_cos = _c_trig(math.cos)
c_tan = _c_trig(math.tan)
c_asin = _c_trig(math.asin)
c_acos = _c_trig(math.acos)
c_atan = math.atan  # total on the extended reals, never raises


def c_fabs(x):
    return math.fabs(x)


def sigmoid(x):
    return 1.0 / (1.0 + c_exp(-x))


def is_finite(x):
    return not (math.isnan(x) or math.isinf(x))


# --------------------------------------------------------------------------------------
# Section 3: randomness.

class Rng:
    """splitmix64, exactly as docs/PROGRAMS.md section 3."""

    def __init__(self, seed):
        self.state = int(seed) & MASK64

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)

    def real(self):
        return (self.next() >> 11) * TWO_POW_M53

    def uniform(self, a, b):
        return a + (b - a) * self.real()

    def gaussian(self, mean, sd):
        u1 = self.real()
        u2 = self.real()
        # mean + ((sd * sqrt(-2 log(1 - u1))) * cos((2 pi) u2)), left to right as written.
        if GAUSSIAN_GROUPING == "left":
            return mean + sd * c_sqrt(-2.0 * c_log(1.0 - u1)) * c_cos(2.0 * math.pi * u2)
        return mean + sd * (c_sqrt(-2.0 * c_log(1.0 - u1)) * c_cos(2.0 * math.pi * u2))


def executor_rng(task_seed):
    return Rng((int(task_seed) & MASK64) ^ EXECUTOR_SEED_XOR)


# --------------------------------------------------------------------------------------
# Section 6: tasks.

class Task:
    def __init__(self, kind, seed, feature_size, num_train, num_valid, num_epochs=1):
        if kind not in TASK_KINDS:
            raise ValueError("unknown task kind %r" % kind)
        self.kind = kind
        self.seed = seed
        self.F = feature_size
        self.num_epochs = num_epochs
        F = feature_size
        r = Rng(seed)
        if kind == LINEAR:
            self.w = [r.gaussian(0.0, 1.0) for _ in range(F)]
            self.W = None
            self.u = None
        else:
            self.w = None
            self.W = [[r.gaussian(0.0, 1.0) for _ in range(F)] for _ in range(F)]
            self.u = [r.gaussian(0.0, 1.0) for _ in range(F)]
        self.train_x = [[r.gaussian(0.0, 1.0) for _ in range(F)] for _ in range(num_train)]
        self.valid_x = [[r.gaussian(0.0, 1.0) for _ in range(F)] for _ in range(num_valid)]
        self.train_y = [self.label(x) for x in self.train_x]
        self.valid_y = [self.label(x) for x in self.valid_x]

    def teacher_output(self, x):
        F = self.F
        if self.kind == LINEAR:
            y = ACC0
            for i in range(F):
                y += self.w[i] * x[i]
            return y
        y = ACC0
        for k in range(F):
            a = ACC0
            for i in range(F):
                a += self.W[k][i] * x[i]
            h = a if 0.0 < a else 0.0  # std::max(0.0, a)
            y += self.u[k] * h
        return y

    def label(self, x):
        t = self.teacher_output(x)
        if self.kind == CLASSIFICATION:
            return 1.0 if t > 0.0 else 0.0
        return t

    @property
    def is_classification(self):
        return self.kind == CLASSIFICATION


# --------------------------------------------------------------------------------------
# Section 2: instructions.

# name -> (code, in1 type, in2 type, out type); types 's', 'v', 'm' or None.
OPS = {
    "NO_OP": (0, None, None, None),
    "SCALAR_SUM": (1, "s", "s", "s"),
    "SCALAR_DIFF": (2, "s", "s", "s"),
    "SCALAR_PRODUCT": (3, "s", "s", "s"),
    "SCALAR_DIVISION": (4, "s", "s", "s"),
    "SCALAR_ABS": (5, "s", None, "s"),
    "SCALAR_RECIPROCAL": (6, "s", None, "s"),
    "SCALAR_SIN": (7, "s", None, "s"),
    "SCALAR_COS": (8, "s", None, "s"),
    "SCALAR_TAN": (9, "s", None, "s"),
    "SCALAR_ARCSIN": (10, "s", None, "s"),
    "SCALAR_ARCCOS": (11, "s", None, "s"),
    "SCALAR_ARCTAN": (12, "s", None, "s"),
    "SCALAR_EXP": (13, "s", None, "s"),
    "SCALAR_LOG": (14, "s", None, "s"),
    "SCALAR_HEAVISIDE": (15, "s", None, "s"),
    "VECTOR_HEAVISIDE": (16, "v", None, "v"),
    "MATRIX_HEAVISIDE": (17, "m", None, "m"),
    "SCALAR_VECTOR_PRODUCT": (18, "s", "v", "v"),
    "SCALAR_BROADCAST": (19, "s", None, "v"),
    "VECTOR_RECIPROCAL": (20, "v", None, "v"),
    "VECTOR_NORM": (21, "v", None, "s"),
    "VECTOR_ABS": (22, "v", None, "v"),
    "VECTOR_SUM": (23, "v", "v", "v"),
    "VECTOR_DIFF": (24, "v", "v", "v"),
    "VECTOR_PRODUCT": (25, "v", "v", "v"),
    "VECTOR_DIVISION": (26, "v", "v", "v"),
    "VECTOR_INNER_PRODUCT": (27, "v", "v", "s"),
    "VECTOR_OUTER_PRODUCT": (28, "v", "v", "m"),
    "SCALAR_MATRIX_PRODUCT": (29, "s", "m", "m"),
    "MATRIX_RECIPROCAL": (30, "m", None, "m"),
    "MATRIX_VECTOR_PRODUCT": (31, "m", "v", "v"),
    "VECTOR_COLUMN_BROADCAST": (32, "v", None, "m"),
    "VECTOR_ROW_BROADCAST": (33, "v", None, "m"),
    "MATRIX_NORM": (34, "m", None, "s"),
    "MATRIX_COLUMN_NORM": (35, "m", None, "v"),
    "MATRIX_ROW_NORM": (36, "m", None, "v"),
    "MATRIX_TRANSPOSE": (37, "m", None, "m"),
    "MATRIX_ABS": (38, "m", None, "m"),
    "MATRIX_SUM": (39, "m", "m", "m"),
    "MATRIX_DIFF": (40, "m", "m", "m"),
    "MATRIX_PRODUCT": (41, "m", "m", "m"),
    "MATRIX_DIVISION": (42, "m", "m", "m"),
    "MATRIX_MATRIX_PRODUCT": (43, "m", "m", "m"),
    "SCALAR_MIN": (44, "s", "s", "s"),
    "VECTOR_MIN": (45, "v", "v", "v"),
    "MATRIX_MIN": (46, "m", "m", "m"),
    "SCALAR_MAX": (47, "s", "s", "s"),
    "VECTOR_MAX": (48, "v", "v", "v"),
    "MATRIX_MAX": (49, "m", "m", "m"),
    "VECTOR_MEAN": (50, "v", None, "s"),
    "MATRIX_MEAN": (51, "m", None, "s"),
    "MATRIX_ROW_MEAN": (52, "m", None, "v"),
    "MATRIX_ROW_ST_DEV": (53, "m", None, "v"),
    "VECTOR_ST_DEV": (54, "v", None, "s"),
    "MATRIX_ST_DEV": (55, "m", None, "s"),
    "SCALAR_CONST_SET": (56, None, None, "s"),
    "VECTOR_CONST_SET": (57, None, None, "v"),
    "MATRIX_CONST_SET": (58, None, None, "m"),
    "SCALAR_UNIFORM_SET": (59, None, None, "s"),
    "VECTOR_UNIFORM_SET": (60, None, None, "v"),
    "MATRIX_UNIFORM_SET": (61, None, None, "m"),
    "SCALAR_GAUSSIAN_SET": (62, None, None, "s"),
    "VECTOR_GAUSSIAN_SET": (63, None, None, "v"),
    "MATRIX_GAUSSIAN_SET": (64, None, None, "m"),
}
OP_NAMES_BY_CODE = {v[0]: k for k, v in OPS.items()}
assert len(OPS) == 65 and sorted(OP_NAMES_BY_CODE) == list(range(65))

RANDOM_OPS = {"SCALAR_UNIFORM_SET", "VECTOR_UNIFORM_SET", "MATRIX_UNIFORM_SET",
              "SCALAR_GAUSSIAN_SET", "VECTOR_GAUSSIAN_SET", "MATRIX_GAUSSIAN_SET"}

COMPONENTS = ("setup", "predict", "learn")


def normalize_instruction(ins):
    op = ins["op"]
    if op.endswith("_OP") and op != "NO_OP":
        op = op[:-3]
    if op not in OPS:
        raise ValueError("unknown op %r" % ins["op"])
    return {
        "op": op,
        "in1": int(ins.get("in1", 0)),
        "in2": int(ins.get("in2", 0)),
        "out": int(ins.get("out", 0)),
        "d": float(ins.get("d", 0.0)),
        "f0": float(ins.get("f0", 0.0)),
        "f1": float(ins.get("f1", 0.0)),
        "f2": float(ins.get("f2", 0.0)),
    }


def normalize_program(program):
    return {c: [normalize_instruction(i) for i in program.get(c, [])] for c in COMPONENTS}


def validate_program(program, S, V, M):
    """Raises ValueError on an address out of range or a write to s0 / v0."""
    counts = {"s": S, "v": V, "m": M}
    min_out = {"s": 1, "v": 1, "m": 0}
    for comp in COMPONENTS:
        for k, ins in enumerate(program[comp]):
            _, t1, t2, to = OPS[ins["op"]]
            where = "%s[%d] %s" % (comp, k, ins["op"])
            for t, a in ((t1, ins["in1"]), (t2, ins["in2"])):
                if t is not None and not (0 <= a < counts[t]):
                    raise ValueError("%s: input address %d out of range" % (where, a))
            if to is not None and not (min_out[to] <= ins["out"] < counts[to]):
                raise ValueError("%s: output address %d not allowed" % (where, ins["out"]))


class Registers:
    def __init__(self, F, S, V, M):
        self.F = F
        self.s = [0.0] * S
        self.v = [[0.0] * F for _ in range(V)]
        self.m = [[[0.0] * F for _ in range(F)] for _ in range(M)]

    def snapshot(self):
        return {
            "scalars": list(self.s),
            "vectors": [list(x) for x in self.v],
            "matrices": [[list(row) for row in mat] for mat in self.m],
        }


def index_of(F, f):
    # index(f) = min(F - 1, floor(F * f)) for f in [0, 1).
    if not (f >= 0.0):
        raise ValueError("index data %r outside [0, 1): unspecified by the doc" % f)
    i = math.floor(F * f)
    return min(F - 1, i)


def _ew1(fn, a):
    return [fn(x) for x in a]


def _ew2(fn, a, b):
    return [fn(x, y) for x, y in zip(a, b)]


def _mew1(fn, A):
    return [[fn(x) for x in row] for row in A]


def _mew2(fn, A, B):
    return [[fn(x, y) for x, y in zip(ra, rb)] for ra, rb in zip(A, B)]


def _heav_strict(x):
    return 1.0 if x > 0.0 else 0.0


def _min(a, b):
    return a if a < b else b


def _max(a, b):
    return a if a > b else b


def _recip(x):
    return c_div(1.0, x)


def execute(ins, R, rng):
    """Executes one (normalized) instruction on registers R. Inputs are read (copied)
    before the output is written, so aliasing reads the old values."""
    op = ins["op"]
    F = R.F
    a, b, o = ins["in1"], ins["in2"], ins["out"]
    s, v, m = R.s, R.v, R.m
    if op == "NO_OP":
        return
    # ---- scalar
    if op == "SCALAR_SUM":
        s[o] = s[a] + s[b]
    elif op == "SCALAR_DIFF":
        s[o] = s[a] - s[b]
    elif op == "SCALAR_PRODUCT":
        s[o] = s[a] * s[b]
    elif op == "SCALAR_DIVISION":
        s[o] = c_div(s[a], s[b])
    elif op == "SCALAR_ABS":
        s[o] = c_fabs(s[a])
    elif op == "SCALAR_RECIPROCAL":
        s[o] = c_div(1.0, s[a])
    elif op == "SCALAR_SIN":
        s[o] = c_sin(s[a])
    elif op == "SCALAR_COS":
        s[o] = c_cos(s[a])
    elif op == "SCALAR_TAN":
        s[o] = c_tan(s[a])
    elif op == "SCALAR_ARCSIN":
        s[o] = c_asin(s[a])
    elif op == "SCALAR_ARCCOS":
        s[o] = c_acos(s[a])
    elif op == "SCALAR_ARCTAN":
        s[o] = c_atan(s[a])
    elif op == "SCALAR_EXP":
        s[o] = c_exp(s[a])
    elif op == "SCALAR_LOG":
        s[o] = c_log(s[a])
    elif op == "SCALAR_HEAVISIDE":
        s[o] = 1.0 if s[a] >= 0.0 else 0.0
    elif op == "SCALAR_MIN":
        s[o] = _min(s[a], s[b])
    elif op == "SCALAR_MAX":
        s[o] = _max(s[a], s[b])
    # ---- heavisides
    elif op == "VECTOR_HEAVISIDE":
        v[o] = _ew1(_heav_strict, v[a])
    elif op == "MATRIX_HEAVISIDE":
        m[o] = _mew1(_heav_strict, m[a])
    # ---- vector
    elif op == "SCALAR_VECTOR_PRODUCT":
        x = s[a]
        v[o] = [x * y for y in v[b]]
    elif op == "SCALAR_BROADCAST":
        v[o] = [s[a]] * F
    elif op == "VECTOR_RECIPROCAL":
        v[o] = _ew1(_recip, v[a])
    elif op == "VECTOR_NORM":
        acc = ACC0
        for x in v[a]:
            acc += x * x
        s[o] = c_sqrt(acc)
    elif op == "VECTOR_ABS":
        v[o] = _ew1(c_fabs, v[a])
    elif op == "VECTOR_SUM":
        v[o] = _ew2(lambda x, y: x + y, v[a], v[b])
    elif op == "VECTOR_DIFF":
        v[o] = _ew2(lambda x, y: x - y, v[a], v[b])
    elif op == "VECTOR_PRODUCT":
        v[o] = _ew2(lambda x, y: x * y, v[a], v[b])
    elif op == "VECTOR_DIVISION":
        v[o] = _ew2(c_div, v[a], v[b])
    elif op == "VECTOR_INNER_PRODUCT":
        acc = ACC0
        va, vb = v[a], v[b]
        for i in range(F):
            acc += va[i] * vb[i]
        s[o] = acc
    elif op == "VECTOR_OUTER_PRODUCT":
        va, vb = list(v[a]), list(v[b])
        m[o] = [[va[i] * vb[j] for j in range(F)] for i in range(F)]
    elif op == "VECTOR_MIN":
        v[o] = _ew2(_min, v[a], v[b])
    elif op == "VECTOR_MAX":
        v[o] = _ew2(_max, v[a], v[b])
    elif op == "VECTOR_MEAN":
        acc = ACC0
        for x in v[a]:
            acc += x
        s[o] = acc / float(F)
    elif op == "VECTOR_ST_DEV":
        va = v[a]
        acc = ACC0
        for x in va:
            acc += x
        mean = acc / float(F)
        sq = ACC0
        for x in va:
            sq += x * x
        s[o] = c_sqrt(sq / float(F) - mean * mean)
    # ---- matrix
    elif op == "SCALAR_MATRIX_PRODUCT":
        x = s[a]
        m[o] = [[x * y for y in row] for row in m[b]]
    elif op == "MATRIX_RECIPROCAL":
        m[o] = _mew1(_recip, m[a])
    elif op == "MATRIX_VECTOR_PRODUCT":
        A, x = m[a], list(v[b])
        out = []
        for i in range(F):
            acc = ACC0
            for j in range(F):
                acc += A[i][j] * x[j]
            out.append(acc)
        v[o] = out
    elif op == "VECTOR_COLUMN_BROADCAST":
        x = list(v[a])
        m[o] = [[x[i]] * F for i in range(F)]
    elif op == "VECTOR_ROW_BROADCAST":
        x = list(v[a])
        m[o] = [list(x) for _ in range(F)]
    elif op == "MATRIX_NORM":
        acc = ACC0
        for row in m[a]:
            for x in row:
                acc += x * x
        s[o] = c_sqrt(acc)
    elif op == "MATRIX_COLUMN_NORM":
        A = m[a]
        out = []
        for j in range(F):
            acc = ACC0
            for i in range(F):
                acc += A[i][j] * A[i][j]
            out.append(c_sqrt(acc))
        v[o] = out
    elif op == "MATRIX_ROW_NORM":
        out = []
        for row in m[a]:
            acc = ACC0
            for x in row:
                acc += x * x
            out.append(c_sqrt(acc))
        v[o] = out
    elif op == "MATRIX_TRANSPOSE":
        A = m[a]
        m[o] = [[A[j][i] for j in range(F)] for i in range(F)]
    elif op == "MATRIX_ABS":
        m[o] = _mew1(c_fabs, m[a])
    elif op == "MATRIX_SUM":
        m[o] = _mew2(lambda x, y: x + y, m[a], m[b])
    elif op == "MATRIX_DIFF":
        m[o] = _mew2(lambda x, y: x - y, m[a], m[b])
    elif op == "MATRIX_PRODUCT":
        m[o] = _mew2(lambda x, y: x * y, m[a], m[b])
    elif op == "MATRIX_DIVISION":
        m[o] = _mew2(c_div, m[a], m[b])
    elif op == "MATRIX_MATRIX_PRODUCT":
        A, B = m[a], m[b]
        out = []
        for i in range(F):
            row = []
            for j in range(F):
                acc = ACC0
                for k in range(F):
                    acc += A[i][k] * B[k][j]
                row.append(acc)
            out.append(row)
        m[o] = out
    elif op == "MATRIX_MIN":
        m[o] = _mew2(_min, m[a], m[b])
    elif op == "MATRIX_MAX":
        m[o] = _mew2(_max, m[a], m[b])
    elif op == "MATRIX_MEAN":
        acc = ACC0
        for row in m[a]:
            for x in row:
                acc += x
        s[o] = acc / float(F * F)
    elif op == "MATRIX_ROW_MEAN":
        out = []
        for row in m[a]:
            acc = ACC0
            for x in row:
                acc += x
            out.append(acc / float(F))
        v[o] = out
    elif op == "MATRIX_ROW_ST_DEV":
        out = []
        for row in m[a]:
            acc = ACC0
            for x in row:
                acc += x
            mean = acc / float(F)
            sq = ACC0
            for x in row:
                sq += x * x
            out.append(c_sqrt(sq / float(F) - mean * mean))
        v[o] = out
    elif op == "MATRIX_ST_DEV":
        A = m[a]
        acc = ACC0
        for row in A:
            for x in row:
                acc += x
        mean = acc / float(F * F)
        sq = ACC0
        for row in A:
            for x in row:
                sq += x * x
        s[o] = c_sqrt(sq / float(F * F) - mean * mean)
    # ---- constants and random sets
    elif op == "SCALAR_CONST_SET":
        s[o] = ins["d"]
    elif op == "VECTOR_CONST_SET":
        v[o][index_of(F, ins["f0"])] = ins["f1"]
    elif op == "MATRIX_CONST_SET":
        m[o][index_of(F, ins["f0"])][index_of(F, ins["f1"])] = ins["f2"]
    elif op == "SCALAR_UNIFORM_SET":
        s[o] = rng.uniform(ins["f0"], ins["f1"])
    elif op == "VECTOR_UNIFORM_SET":
        v[o] = [rng.uniform(ins["f0"], ins["f1"]) for _ in range(F)]
    elif op == "MATRIX_UNIFORM_SET":
        m[o] = [[rng.uniform(ins["f0"], ins["f1"]) for _ in range(F)] for _ in range(F)]
    elif op == "SCALAR_GAUSSIAN_SET":
        s[o] = rng.gaussian(ins["f0"], ins["f1"])
    elif op == "VECTOR_GAUSSIAN_SET":
        v[o] = [rng.gaussian(ins["f0"], ins["f1"]) for _ in range(F)]
    elif op == "MATRIX_GAUSSIAN_SET":
        m[o] = [[rng.gaussian(ins["f0"], ins["f1"]) for _ in range(F)] for _ in range(F)]
    else:  # pragma: no cover
        raise ValueError("unhandled op %s" % op)


# --------------------------------------------------------------------------------------
# Section 4: execution and fitness.

# How a validation failure (non-finite s1, |e| NaN or > max_abs_error) in an epoch after
# the first is scored. The doc (section 4, step 4) says it "gives the task fitness 0";
# step 5 says a task "stopped in a later epoch" gets the best of the completed epochs.
# In epoch 1 all policies agree (fitness 0). See CARD.md.
VALID_FAIL_STOP_BEST_COMPLETED = "stop_best_completed"  # default
VALID_FAIL_TASK_ZERO = "task_zero"
VALID_FAIL_EPOCH_ZERO_CONTINUE = "epoch_zero_continue"
VALID_FAIL_POLICIES = (VALID_FAIL_STOP_BEST_COMPLETED, VALID_FAIL_TASK_ZERO,
                       VALID_FAIL_EPOCH_ZERO_CONTINUE)


# Whether the registers as left by an epoch's validation Predicts carry into the next
# epoch's training. The doc zeroes registers once per task and says nothing else, so
# "carry" (default) is the literal reading; "restore" snapshots the registers before
# validation and restores them after. (The executor generator is not restored under
# either policy: section 3 shares it by every Predict in execution order.) See CARD.md.
VALID_STATE_CARRY = "carry"
VALID_STATE_RESTORE = "restore"
VALID_STATE_POLICIES = (VALID_STATE_CARRY, VALID_STATE_RESTORE)


class Result:
    def __init__(self):
        self.fitness = 0.0
        self.stopped_early = False
        self.stop = None  # dict describing the stop
        self.epoch_fitnesses = []  # fitness of each completed epoch
        self.trace = []
        self.train_predictions = []  # s1 after each training Predict (post-sigmoid)
        self.valid_predictions = []  # s1 after each validation Predict


def run_task(program, task, S, V, M, max_abs_error, trace=False, trace_examples=3,
             hook=None, valid_fail_policy=VALID_FAIL_STOP_BEST_COMPLETED,
             record_predictions=False, valid_state_policy=VALID_STATE_CARRY):
    """Runs one task (section 4). `program` must be normalized. `hook(comp, idx, ins,
    before, after)` is called around every instruction with register snapshots when given
    (slow; for self-checks)."""
    F = task.F
    R = Registers(F, S, V, M)
    rng = executor_rng(task.seed)
    res = Result()

    def snap(name):
        if trace:
            d = {"point": name}
            d.update(R.snapshot())
            res.trace.append(d)

    def run_component(comp):
        for k, ins in enumerate(program[comp]):
            if hook is not None:
                before = R.snapshot()
                execute(ins, R, rng)
                hook(comp, k, ins, before, R.snapshot())
            else:
                execute(ins, R, rng)

    run_component("setup")
    snap("after_setup")

    def finish_stopped(epoch, phase, example, reason):
        res.stopped_early = True
        if res.stop is None:  # keep the first failure (epoch_zero_continue)
            res.stop = {"epoch": epoch, "phase": phase, "example": example, "reason": reason}
        if phase == "valid" and valid_fail_policy == VALID_FAIL_TASK_ZERO:
            res.fitness = 0.0
        else:
            res.fitness = max(res.epoch_fitnesses) if res.epoch_fitnesses else 0.0
        return res

    n_valid = len(task.valid_x)
    for epoch in range(1, task.num_epochs + 1):
        for i, (x, y) in enumerate(zip(task.train_x, task.train_y)):
            R.v[0] = list(x)
            R.s[0] = 0.0
            run_component("predict")
            if task.is_classification:
                R.s[1] = sigmoid(R.s[1])
            if epoch == 1 and i < trace_examples:
                snap("after_predict_train_%d" % i)
            if record_predictions:
                res.train_predictions.append(R.s[1])
            err = abs(y - R.s[1])
            if math.isnan(err) or err > max_abs_error:
                return finish_stopped(epoch, "train", i,
                                      "nan" if math.isnan(err) else "abs_error")
            R.v[0] = list(x)
            R.s[0] = y
            run_component("learn")
            if epoch == 1 and i < trace_examples:
                snap("after_learn_train_%d" % i)
        if valid_state_policy == VALID_STATE_RESTORE:
            saved = R.snapshot()
        acc = 0.0
        failed = None
        for j, (x, y) in enumerate(zip(task.valid_x, task.valid_y)):
            R.v[0] = list(x)
            R.s[0] = 0.0
            run_component("predict")
            if epoch == 1 and j < trace_examples:
                snap("after_predict_valid_%d" % j)
            p = R.s[1]
            if record_predictions:
                res.valid_predictions.append(p)
            if not is_finite(p):
                failed = (j, "non_finite_prediction")
                break
            if task.is_classification:
                e = 0.0 if ((y > 0.5) == (sigmoid(p) > 0.5)) else 1.0
                ae = abs(e)
                if math.isnan(ae) or ae > max_abs_error:
                    failed = (j, "abs_error")
                    break
                acc += e
            else:
                e = y - p
                ae = abs(e)
                if math.isnan(ae) or ae > max_abs_error:
                    failed = (j, "nan" if math.isnan(ae) else "abs_error")
                    break
                acc += e * e
        if failed is not None:
            if valid_fail_policy == VALID_FAIL_EPOCH_ZERO_CONTINUE and epoch > 1:
                res.stopped_early = True
                if res.stop is None:
                    res.stop = {"epoch": epoch, "phase": "valid", "example": failed[0],
                                "reason": failed[1]}
                res.epoch_fitnesses.append(0.0)
                continue
            return finish_stopped(epoch, "valid", failed[0], failed[1])
        if valid_state_policy == VALID_STATE_RESTORE:
            R.s, R.v, R.m = saved["scalars"], saved["vectors"], saved["matrices"]
        if task.is_classification:
            fit = 1.0 - acc / float(n_valid)
        else:
            rmse = c_sqrt(acc / float(n_valid))
            if FITNESS_GROUPING == "left":
                fit = 1.0 - (2.0 / math.pi) * math.atan(rmse)
            else:
                fit = 1.0 - 2.0 * math.atan(rmse) / math.pi
        res.epoch_fitnesses.append(fit)
    res.fitness = max(res.epoch_fitnesses) if res.epoch_fitnesses else 0.0
    return res


def mean_fitness(program, tasks, S, V, M, max_abs_error, **kw):
    """Candidate fitness: mean of the tasks' fitnesses (summed in task order)."""
    fits = [run_task(program, t, S, V, M, max_abs_error, **kw).fitness for t in tasks]
    acc = 0.0
    for f in fits:
        acc += f
    return acc / float(len(fits)), fits


# --------------------------------------------------------------------------------------
# JSON helpers.

def encode_floats(obj):
    """Non-finite floats as the strings "nan", "inf", "-inf" (recursively)."""
    if isinstance(obj, float):
        if math.isnan(obj):
            return "nan"
        if math.isinf(obj):
            return "inf" if obj > 0 else "-inf"
        return obj
    if isinstance(obj, dict):
        return {k: encode_floats(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [encode_floats(v) for v in obj]
    return obj


def decode_floats(obj):
    if isinstance(obj, str) and obj in ("nan", "inf", "-inf"):
        return float(obj)
    if isinstance(obj, dict):
        return {k: decode_floats(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [decode_floats(v) for v in obj]
    return obj


# --------------------------------------------------------------------------------------
# CLI.

def _load_program(path):
    with open(path) as fh:
        return normalize_program(json.load(fh))


def _add_run_args(p):
    p.add_argument("program", help="program JSON file")
    p.add_argument("--kind", default=LINEAR, choices=TASK_KINDS)
    p.add_argument("--F", type=int, default=4)
    p.add_argument("--regs", type=int, nargs=3, default=[4, 3, 1], metavar=("S", "V", "M"))
    p.add_argument("--train", type=int, default=100)
    p.add_argument("--valid", type=int, default=100)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--max-abs-error", type=float, default=100.0)
    p.add_argument("--valid-fail-policy", default=VALID_FAIL_STOP_BEST_COMPLETED,
                   choices=VALID_FAIL_POLICIES)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("rng")
    p.add_argument("seed", type=int)
    p.add_argument("n", type=int, nargs="?", default=5)
    p = sub.add_parser("task")
    p.add_argument("kind", choices=TASK_KINDS)
    p.add_argument("seed", type=int)
    p.add_argument("F", type=int)
    p.add_argument("ntrain", type=int)
    p.add_argument("nvalid", type=int)
    p = sub.add_parser("fitness")
    _add_run_args(p)
    p.add_argument("--seeds", type=int, nargs="+", default=list(range(1, 11)))
    p = sub.add_parser("trace")
    _add_run_args(p)
    p.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)

    if args.cmd == "rng":
        r = Rng(args.seed)
        out = {"next": [r.next() for _ in range(args.n)]}
        r = Rng(args.seed)
        out["real"] = [r.real() for _ in range(args.n)]
        r = Rng(args.seed)
        out["gaussian01"] = [r.gaussian(0.0, 1.0) for _ in range(args.n)]
        print(json.dumps(out, indent=1))
    elif args.cmd == "task":
        t = Task(args.kind, args.seed, args.F, args.ntrain, args.nvalid)
        print(json.dumps({"w": t.w, "W": t.W, "u": t.u,
                          "train": [{"x": x, "y": y} for x, y in zip(t.train_x, t.train_y)],
                          "valid": [{"x": x, "y": y} for x, y in zip(t.valid_x, t.valid_y)]},
                         indent=1))
    else:
        prog = _load_program(args.program)
        S, V, M = args.regs
        validate_program(prog, S, V, M)
        if args.cmd == "fitness":
            tasks = [Task(args.kind, s, args.F, args.train, args.valid, args.epochs)
                     for s in args.seeds]
            f, fits = mean_fitness(prog, tasks, S, V, M, args.max_abs_error,
                                   valid_fail_policy=args.valid_fail_policy)
            print(json.dumps({"fitness": f, "task_fitnesses": fits}, indent=1))
        else:
            t = Task(args.kind, args.seed, args.F, args.train, args.valid, args.epochs)
            r = run_task(prog, t, S, V, M, args.max_abs_error, trace=True,
                         valid_fail_policy=args.valid_fail_policy)
            print(json.dumps(encode_floats({"task_fitness": r.fitness,
                                            "stopped_early": r.stopped_early,
                                            "stop": r.stop,
                                            "epoch_fitnesses": r.epoch_fitnesses,
                                            "trace": r.trace}), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
