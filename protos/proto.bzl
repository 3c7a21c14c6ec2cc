"""One macro for every .proto in the tree: no BUILD file calls protoc by hand.

ac_proto_library(name = "x", srcs = ["x.proto"], deps = [":y"]) makes
  :x_proto_srcs       the .proto files (for protoc's imports of dependents)
  :x_cc_proto         messages only (no gRPC dependency)
  :x_cc_grpc          service stubs and bases (links grpc++)
  :x_cc_grpc_mock     gMock stubs (testonly)
Imports and includes are relative to //protos, e.g.
  import "autocompress/v1/common.proto";  #include "autocompress/v1/common.pb.h"
"""

def _strip(src):
    return src[:-len(".proto")]

def ac_proto_library(name, srcs, deps = [], services = True, testonly = False, visibility = ["//:project"]):
    pkg = native.package_name()
    if not pkg.startswith("protos"):
        fail("ac_proto_library belongs under //protos")
    stems = [_strip(s) for s in srcs]
    pb = [s + ".pb.h" for s in stems] + [s + ".pb.cc" for s in stems]
    grpc = [s + ".grpc.pb.h" for s in stems] + [s + ".grpc.pb.cc" for s in stems]
    mock = [s + "_mock.grpc.pb.h" for s in stems]

    native.filegroup(
        name = name + "_proto_srcs",
        srcs = srcs + [d + "_proto_srcs" for d in deps],
        testonly = testonly,
        visibility = visibility,
    )
    outs = pb + (grpc + mock if services else [])
    grpc_flags = ("--grpc_out=generate_mock_code=true:$(GENDIR)/protos " +
                  "--plugin=protoc-gen-grpc=$(location @system_libs//:grpc_cpp_plugin) ") if services else ""
    native.genrule(
        name = name + "_codegen",
        srcs = [name + "_proto_srcs"],
        outs = outs,
        cmd = ("$(location @system_libs//:protoc) --proto_path=protos --proto_path=/usr/include " +
               "--cpp_out=$(GENDIR)/protos " + grpc_flags +
               " ".join(["%s/%s" % (pkg, s) for s in srcs])),
        tools = ["@system_libs//:protoc", "@system_libs//:grpc_cpp_plugin"],
        testonly = testonly,
    )
    native.cc_library(
        name = name + "_cc_proto",
        srcs = [s + ".pb.cc" for s in stems],
        hdrs = [s + ".pb.h" for s in stems],
        strip_include_prefix = "/protos",
        deps = [d + "_cc_proto" for d in deps] + ["@system_libs//:protobuf"],
        testonly = testonly,
        visibility = visibility,
    )
    if not services:
        return
    native.cc_library(
        name = name + "_cc_grpc",
        srcs = [s + ".grpc.pb.cc" for s in stems],
        hdrs = [s + ".grpc.pb.h" for s in stems],
        strip_include_prefix = "/protos",
        deps = [name + "_cc_proto", "@system_libs//:grpc++"],
        testonly = testonly,
        visibility = visibility,
    )
    native.cc_library(
        name = name + "_cc_grpc_mock",
        hdrs = mock,
        strip_include_prefix = "/protos",
        deps = [name + "_cc_grpc", "@system_libs//:gmock"],
        testonly = True,
        visibility = visibility,
    )
