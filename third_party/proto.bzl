"""Protocol Buffers and gRPC code generation with Debian's protoc and grpc_cpp_plugin.

One line per proto in a BUILD file:
    fec_proto_library(name = "worker_proto", src = "worker.proto", deps = [":evaluation_proto"], grpc = True)
gives a cc_library `worker_proto` with the generated messages (and the gRPC service when
grpc = True), and a filegroup `worker_proto_files` with the .proto and everything it imports.
"""

def fec_proto_library(name, src, deps = [], grpc = False, visibility = None):
    base = src[:-len(".proto")]
    outs = [base + ".pb.h", base + ".pb.cc"]
    grpc_flags = ""
    if grpc:
        outs += [base + ".grpc.pb.h", base + ".grpc.pb.cc"]
        grpc_flags = "--plugin=protoc-gen-grpc=$$(command -v grpc_cpp_plugin) --grpc_out=$(GENDIR) "
    native.filegroup(
        name = name + "_files",
        srcs = [src] + [d + "_files" for d in deps],
        visibility = visibility,
    )
    native.genrule(
        name = name + "_gen",
        srcs = [src, name + "_files"],
        outs = outs,
        cmd = "protoc -I. --cpp_out=$(GENDIR) " + grpc_flags + "$(location " + src + ")",
        message = "protoc " + src,
    )
    lib_deps = ["@system_libs//:protobuf"] + deps
    if grpc:
        lib_deps.append("@system_libs//:grpc")
    native.cc_library(
        name = name,
        srcs = [o for o in outs if o.endswith(".cc")],
        hdrs = [o for o in outs if o.endswith(".h")],
        deps = lib_deps,
        visibility = visibility,
    )
