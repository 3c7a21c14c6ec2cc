"""fuzz_target: one libFuzzer target and its kept corpus.

NAME_fuzzer is a libFuzzer binary under --config=fuzz (clang,
-fsanitize=fuzzer,address,undefined: `./dev fuzz`), else the same code on corpus_main.cc,
run over corpus/NAME/ as a test in every `./dev test`. `./dev fuzz` finds the targets by
their corpus folders.
"""

def fuzz_target(name, deps):
    native.cc_test(
        name = name + "_fuzzer",
        size = "small",
        srcs = [name + "_fuzzer.cc"],
        args = ["tests/fuzz/corpus/" + name],
        data = native.glob(["corpus/%s/**" % name]),
        deps = deps + select({
            ":fuzzing": [],
            "//conditions:default": [":corpus_main"],
        }),
        linkopts = select({
            ":fuzzing": ["-fsanitize=fuzzer"],
            "//conditions:default": [],
        }),
    )
