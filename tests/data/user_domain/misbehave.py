#!/usr/bin/python3
"""A probe or evaluator command that misbehaves on purpose, for //tests:user_domain_test.

    misbehave.py MODE     (reads a fecsearch.domain.v1 request on stdin)

MODE: nonnumber (an output that is a string), fail (stderr and exit 3), sleep (never answers
in time), random (different outputs on every run), garbage (not JSON), protocol (another
protocol), noobjective (an evaluate response without the objectives), constant (the same
outputs for every candidate: a probe that cannot tell candidates apart, so every hit after the
first evaluation is a false one).
"""
import json
import os
import sys
import time

mode = sys.argv[1]
request = json.load(sys.stdin)
ok = {"protocol": "fecsearch.domain.v1"}
if mode == "nonnumber":
    print(json.dumps(dict(ok, outputs=[1.0, "two", 3.0])))
elif mode == "fail":
    sys.stderr.write("Traceback (most recent call last):\nZeroDivisionError: division by zero in probe step 3\n")
    sys.exit(3)
elif mode == "sleep":
    time.sleep(30)
elif mode == "random":
    print(json.dumps(dict(ok, outputs=[int.from_bytes(os.urandom(4), "little") / 2**32 for _ in range(4)])))
elif mode == "garbage":
    print("hello, I am not JSON")
elif mode == "protocol":
    print(json.dumps({"protocol": "someone.else.v7", "outputs": [1.0]}))
elif mode == "constant":
    print(json.dumps(dict(ok, outputs=[1.0, 2.0])))
elif mode == "noobjective":
    print(json.dumps(dict(ok, objectives={"params": 3})))
else:
    sys.exit(f"misbehave.py: unknown mode {mode!r}")
