#!/usr/bin/python3
"""Asks a worker's gRPC server reflection for its services (list_services), with grpcio and
hand-encoded protobuf bytes (Debian has no grpcio-reflection package).

  reflection_check.py ADDRESS [--ca=PEM --server_name=NAME] [--token=T] --expect=SERVICE...
  reflection_check.py ADDRESS ... --expect_code=UNAUTHENTICATED
Exit 0 when the expectation holds, 1 otherwise (saying why)."""
import argparse
import sys

import grpc

METHOD = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
# ServerReflectionRequest { list_services: "" }: field 7, length-delimited, empty.
LIST_SERVICES = b"\x3a\x00"


def strings(buf):
    """Every length-delimited UTF-8 string in a protobuf message, recursively."""
    out, i = [], 0
    while i < len(buf):
        key, i = varint(buf, i)
        wire = key & 7
        if wire == 0:
            _, i = varint(buf, i)
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        elif wire == 2:
            n, i = varint(buf, i)
            chunk = buf[i:i + n]
            i += n
            try:
                out.append(chunk.decode("utf-8"))
            except UnicodeDecodeError:
                pass
            try:
                out.extend(strings(chunk))
            except (IndexError, ValueError):
                pass
        else:
            raise ValueError("wire type %d" % wire)
    return out


def varint(buf, i):
    shift = value = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, i


def main():
    p = argparse.ArgumentParser()
    p.add_argument("address")
    p.add_argument("--ca")
    p.add_argument("--server_name")
    p.add_argument("--token")
    p.add_argument("--expect", action="append", default=[])
    p.add_argument("--expect_code")
    a = p.parse_args()
    if a.ca:
        creds = grpc.ssl_channel_credentials(root_certificates=open(a.ca, "rb").read())
        options = [("grpc.ssl_target_name_override", a.server_name)] if a.server_name else []
        channel = grpc.secure_channel(a.address, creds, options=options)
    else:
        channel = grpc.insecure_channel(a.address)
    call = channel.stream_stream(METHOD, request_serializer=None, response_deserializer=None)
    metadata = [("authorization", "Bearer " + a.token)] if a.token else None
    try:
        responses = list(call(iter([LIST_SERVICES]), metadata=metadata, timeout=10))
    except grpc.RpcError as e:
        if a.expect_code and e.code().name == a.expect_code:
            print("reflection refused as expected: %s (%s)" % (e.code().name, e.details()))
            return 0
        print("reflection call failed: %s: %s" % (e.code().name, e.details()))
        return 1
    if a.expect_code:
        print("reflection answered, expected %s" % a.expect_code)
        return 1
    names = set(s for r in responses for s in strings(r))
    missing = [s for s in a.expect if s not in names]
    if missing:
        print("reflection does not list %s (got %s)" % (missing, sorted(names)))
        return 1
    print("reflection lists %s" % sorted(n for n in names if n.isprintable() and "." in n))
    return 0


if __name__ == "__main__":
    sys.exit(main())
