"""Wraps Debian-installed C++ libraries as Bazel targets, offline.

Each entry of `libs` maps a target name to pkg-config module names; the generated
cc_library carries only linkopts (headers live in /usr/include, which the compiler
searches by default). `raw_libs` maps a target name to link flags for libraries
that ship no .pc file. Each entry of `tools` exposes an installed binary.
"""

def _system_libs_impl(rctx):
    out = ['package(default_visibility = ["//visibility:public"])', ""]
    for name, modules in rctx.attr.libs.items():
        res = rctx.execute(["pkg-config", "--libs"] + modules.split(" "))
        if res.return_code != 0:
            fail("pkg-config %s failed (run ./dev setup): %s" % (modules, res.stderr))
        flags = [f for f in res.stdout.strip().split(" ") if f]
        out.append("cc_library(name = %r, linkopts = %r)" % (name, flags))
    for name, flags in rctx.attr.raw_libs.items():
        out.append("cc_library(name = %r, linkopts = %r)" % (name, flags.split(" ")))
    for name, path in rctx.attr.tools.items():
        rctx.symlink(path, "bin/" + name)
        out.append("sh_binary(name = %r, srcs = [%r])" % (name, "bin/" + name))
    rctx.file("WORKSPACE", "")
    rctx.file("BUILD.bazel", "\n".join(out) + "\n")

system_libs = repository_rule(
    implementation = _system_libs_impl,
    attrs = {
        "libs": attr.string_dict(),
        "raw_libs": attr.string_dict(),
        "tools": attr.string_dict(),
    },
    local = True,
)
