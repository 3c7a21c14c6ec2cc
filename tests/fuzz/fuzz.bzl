"""fuzz_target: one libFuzzer target and its kept corpus.

NAME_fuzzer (cc_binary) is a libFuzzer binary under --config=fuzz (clang,
-fsanitize=fuzzer,address,undefined: `./dev fuzz`), else the same code on corpus_main.cc;
NAME_corpus_test runs it over corpus/NAME/ in every `./dev test`.
"""

def fuzz_target(name, deps):
    native.cc_binary(
        name = name + "_fuzzer",
        srcs = [name + "_fuzzer.cc"],
        deps = deps + select({
            ":fuzzing": [],
            "//conditions:default": [":corpus_main"],
        }),
        linkopts = select({
            ":fuzzing": ["-fsanitize=fuzzer"],
            "//conditions:default": [],
        }),
    )
    native.sh_test(
        name = name + "_corpus_test",
        size = "small",
        srcs = ["corpus_test.sh"],
        args = [
            "$(location :%s_fuzzer)" % name,
            "tests/fuzz/corpus/" + name,
        ],
        data = [":%s_fuzzer" % name] + native.glob(["corpus/%s/**" % name]),
    )
