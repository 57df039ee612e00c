#!/usr/bin/python3
"""A fecsearch worker written in Python with grpcio, against the same protos/worker.proto as
the C++ worker: the protocol is language-neutral. It evaluates with the metric of
examples/python_evaluator/evaluate.py.

    python3 examples/python_worker/worker.py --listen=127.0.0.1:50061
    bazel run //search -- --experiment=examples/python_worker/int_keys.textproto --workers=127.0.0.1:50061

The Python message classes are generated from protos/*.proto with protoc at start-up.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import threading
from concurrent import futures

import grpc

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))


def generate_protos(proto_root):
    """protoc --python_out for every .proto under proto_root/protos, into a temp dir."""
    out = tempfile.mkdtemp(prefix="fecsearch_pb2_")
    protos = sorted(os.path.join("protos", f) for f in os.listdir(os.path.join(proto_root, "protos"))
                    if f.endswith(".proto"))
    subprocess.run(["protoc", f"-I{proto_root}", f"--python_out={out}"] + protos, check=True)
    sys.path.insert(0, out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:50061")
    parser.add_argument("--name", default="python-worker")
    parser.add_argument("--capacity", type=int, default=2)
    parser.add_argument("--proto_root", default=REPO, help="directory holding protos/")
    parser.add_argument("--port_file", default="")
    args = parser.parse_args()

    generate_protos(args.proto_root)
    from protos import worker_pb2  # generated above
    from google.protobuf import json_format
    sys.path.insert(0, os.path.join(REPO, "examples", "python_evaluator"))
    sys.path.insert(0, os.path.join(args.proto_root, "examples", "python_evaluator"))
    import evaluate as metric

    lock = threading.Lock()
    state = {"in_flight": 0, "served": 0}

    def evaluate(request, context):
        with lock:
            if state["in_flight"] >= args.capacity:
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"{args.name} is full")
            state["in_flight"] += 1
        try:
            if not request.HasField("candidate"):
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "candidate is required")
            as_json = json_format.MessageToDict(request)
            response = worker_pb2.EvaluateResponse()
            json_format.ParseDict(metric.evaluate(as_json), response)
            response.worker = args.name
            with lock:
                state["served"] += 1
            return response
        finally:
            with lock:
                state["in_flight"] -= 1

    def describe(request, context):
        with lock:
            return worker_pb2.DescribeResponse(worker=args.name, version="python-example", capacity=args.capacity,
                                               in_flight=state["in_flight"], mode="command",
                                               evaluations_served=state["served"])

    handler = grpc.method_handlers_generic_handler("fecsearch.rpc.Evaluator", {
        "Evaluate": grpc.unary_unary_rpc_method_handler(
            evaluate, request_deserializer=worker_pb2.EvaluateRequest.FromString,
            response_serializer=worker_pb2.EvaluateResponse.SerializeToString),
        "Describe": grpc.unary_unary_rpc_method_handler(
            describe, request_deserializer=worker_pb2.DescribeRequest.FromString,
            response_serializer=worker_pb2.DescribeResponse.SerializeToString),
    })
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=args.capacity + 2))
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
    print(f"worker.py: serving {args.name} on port {port}", file=sys.stderr, flush=True)
    server.wait_for_termination()
    return 0


if __name__ == "__main__":
    sys.exit(main())
