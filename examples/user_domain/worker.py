#!/usr/bin/python3
"""The mlp_recipe domain as a gRPC worker in Python: serves the domain-free EvaluateGenes and
ProbeGenes of protos/worker.proto (docs/DOMAINS.md) in-process with recipe.py, so no process is
started per candidate. Any language can serve a user domain this way.

    /usr/bin/python3 examples/user_domain/worker.py --listen=127.0.0.1:50071
    bazel run //search -- --experiment=$PWD/examples/user_domain/mlp_recipe.textproto --workers=127.0.0.1:50071
    # and, for the probe too: probe_worker: "127.0.0.1:50071" in place of the probe command

The Python message classes are generated from protos/*.proto with protoc at start-up.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent import futures

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)

import grpc  # noqa: E402
import recipe  # noqa: E402


def generate_protos(proto_root):
    out = tempfile.mkdtemp(prefix="fecsearch_pb2_")
    protos = sorted(os.path.join("protos", f) for f in os.listdir(os.path.join(proto_root, "protos"))
                    if f.endswith(".proto"))
    subprocess.run(["protoc", f"-I{proto_root}", f"--python_out={out}"] + protos, check=True)
    sys.path.insert(0, out)


def genes_of(request):
    """The request's genes as recipe.py takes them (the protocol's JSON values)."""
    return {g.name: getattr(g, g.WhichOneof("value")) for g in request.genes if g.WhichOneof("value")}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:50071")
    parser.add_argument("--name", default="python-mlp-worker")
    parser.add_argument("--capacity", type=int, default=2)
    parser.add_argument("--proto_root", default=REPO, help="directory holding protos/")
    parser.add_argument("--port_file", default="")
    args = parser.parse_args()
    generate_protos(args.proto_root)
    from protos import worker_pb2  # generated above

    lock = threading.Lock()
    state = {"in_flight": 0, "served": 0}

    def check(request, context):
        if request.domain != recipe.DOMAIN:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          f"{args.name} serves domain {recipe.DOMAIN!r}, the request is for {request.domain!r}")

    def evaluate_genes(request, context):
        check(request, context)
        if not request.HasField("candidate_id"):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "candidate_id is required")
        with lock:
            if state["in_flight"] >= args.capacity:
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"{args.name} is full")
            state["in_flight"] += 1
        try:
            response = worker_pb2.GenesResponse(candidate_id=request.candidate_id, worker=args.name)
            start = time.perf_counter()
            try:
                for name, value in recipe.evaluate(genes_of(request)).items():
                    response.objectives[name] = float(value)
                response.cost_seconds = time.perf_counter() - start
            except recipe.GeneError as e:
                response.error = str(e)
            with lock:
                state["served"] += 1
            return response
        finally:
            with lock:
                state["in_flight"] -= 1

    def probe_genes(request, context):
        check(request, context)
        try:
            return worker_pb2.ProbeResponse(outputs=recipe.probe(genes_of(request)))
        except recipe.GeneError as e:
            return worker_pb2.ProbeResponse(error=str(e))

    def describe(request, context):
        with lock:
            return worker_pb2.DescribeResponse(worker=args.name, version="python-example", capacity=args.capacity,
                                               in_flight=state["in_flight"], mode="domain",
                                               evaluations_served=state["served"])

    rpc = lambda f, req, resp: grpc.unary_unary_rpc_method_handler(  # noqa: E731
        f, request_deserializer=req.FromString, response_serializer=resp.SerializeToString)
    handler = grpc.method_handlers_generic_handler("fecsearch.rpc.Evaluator", {
        "EvaluateGenes": rpc(evaluate_genes, worker_pb2.GenesRequest, worker_pb2.GenesResponse),
        "ProbeGenes": rpc(probe_genes, worker_pb2.ProbeRequest, worker_pb2.ProbeResponse),
        "Describe": rpc(describe, worker_pb2.DescribeRequest, worker_pb2.DescribeResponse),
    })
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2 * args.capacity + 2))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port(args.listen)
    if port == 0:
        print(f"worker.py: cannot listen on {args.listen}", file=sys.stderr)
        return 2
    server.start()
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write(f"{port}\n")
        os.rename(args.port_file + ".tmp", args.port_file)
    print(f"worker.py: serving domain {recipe.DOMAIN} as {args.name} on port {port}", file=sys.stderr, flush=True)
    server.wait_for_termination()
    return 0


if __name__ == "__main__":
    sys.exit(main())
