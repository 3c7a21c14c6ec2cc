"""The repository's Dockerfiles and .dockerignore hold to deploy/dockerfile_rules.py, and
each rule rejects a Dockerfile that breaks it (so a rule that stopped checking fails
here). Runs on Debian's python3 with the standard library only."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dockerfile_rules  # noqa: E402

ROOT = os.environ.get("DOCKERFILE_RULES_ROOT") or os.path.dirname(
    os.path.dirname(os.path.abspath(__file__)))

DEV = "PACKAGES=(\n  g++ libfoo-dev\n)\n"
README = "DEBIAN_IMAGE RUNTIME_IMAGE"

# A Dockerfile that passes every rule; each test breaks one thing in it.
GOOD = """\
# Build arguments:
#   DEBIAN_IMAGE   image of the build stage
#   RUNTIME_IMAGE  image of the final stage
ARG DEBIAN_IMAGE=debian:bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim
FROM ${DEBIAN_IMAGE} AS builder
RUN apt-get update \\
 && apt-get install -y --no-install-recommends g++ libfoo-dev \\
 && rm -rf /var/lib/apt/lists/*
RUN make -C /src && mkdir -p /out
FROM ${RUNTIME_IMAGE} AS runtime
RUN apt-get update \\
 && apt-get install -y --no-install-recommends libfoo1 \\
 && rm -rf /var/lib/apt/lists/*
COPY --from=builder /out/ /usr/local/bin/
USER 10001:10001
# probe: gRPC health on the server port
ENTRYPOINT ["/usr/local/bin/server"]
"""


def problems(text, dev=DEV, readme=README):
    return dockerfile_rules.check_dockerfile(text, "test.Dockerfile", dev, readme)


def rules(text, **kwargs):
    return {p.split(":")[2].strip() for p in problems(text, **kwargs)}


class RepositoryTest(unittest.TestCase):
    def test_the_repositorys_files_keep_every_rule(self):
        dockerfiles, found = dockerfile_rules.check_repository(ROOT)
        self.assertGreaterEqual(len(dockerfiles), 2, dockerfiles)
        names = {os.path.basename(d) for d in dockerfiles}
        self.assertIn("autocompress.Dockerfile", names)
        self.assertIn("worker-gpu.Dockerfile", names)
        self.assertEqual(found, [])


class RulesTest(unittest.TestCase):
    def test_the_good_dockerfile_passes(self):
        self.assertEqual(problems(GOOD), [])

    def test_one_stage_is_not_enough(self):
        text = GOOD[GOOD.index("ARG RUNTIME_IMAGE"):GOOD.index("FROM ${DEBIAN")] + \
            GOOD[GOOD.index("FROM ${RUNTIME_IMAGE}"):].replace("COPY --from=builder /out/ /usr/local/bin/\n", "")
        self.assertIn("multi-stage", rules(text, dev=None))

    def test_latest_or_untagged_bases_are_refused(self):
        self.assertIn("pinned-base", rules(GOOD.replace("debian:bookworm\n", "debian:latest\n")))
        self.assertIn("pinned-base", rules(GOOD.replace("debian:bookworm\n", "debian\n")))

    def test_the_final_stage_must_be_bookworm(self):
        self.assertIn("final-base", rules(GOOD.replace("debian:bookworm-slim", "ubuntu:22.04")))

    def test_the_final_stage_must_not_run_as_root(self):
        self.assertIn("non-root", rules(GOOD.replace("USER 10001:10001\n", "")))
        self.assertIn("non-root", rules(GOOD.replace("USER 10001:10001", "USER 0")))
        self.assertIn("non-root", rules(GOOD.replace("USER 10001:10001", "USER root")))
        self.assertIn("non-root", rules(GOOD.replace("USER 10001:10001", "USER app")))

    def test_no_compiler_or_dev_package_in_the_final_stage(self):
        self.assertIn("runtime-only", rules(GOOD.replace("libfoo1", "libfoo1 g++")))
        self.assertIn("runtime-only", rules(GOOD.replace("libfoo1", "libbar-dev")))

    def test_apt_installs_are_lean_and_clean(self):
        runtime = GOOD.index("FROM ${RUNTIME_IMAGE}")
        head, tail = GOOD[:runtime], GOOD[runtime:]
        self.assertIn("apt", rules(head + tail.replace("--no-install-recommends ", "")))
        self.assertIn("apt", rules(head + tail.replace(" \\\n && rm -rf /var/lib/apt/lists/*", "", 1)))
        self.assertIn("apt", rules(head + tail.replace("apt-get update \\\n && ", "", 1)))

    def test_every_variable_is_declared(self):
        self.assertIn("undeclared-arg", rules(GOOD.replace("${DEBIAN_IMAGE}", "${BUILD_IMAGE}")))
        self.assertIn("undeclared-arg",
                      rules(GOOD.replace("make -C /src", "make -C /src JOBS=$JOBS_FLAG")))

    def test_every_arg_is_documented_in_the_file_and_the_readme(self):
        self.assertIn("arg-docs", rules(GOOD.replace("#   RUNTIME_IMAGE  image of the final stage\n", "")))
        self.assertIn("arg-docs", rules(GOOD, readme="DEBIAN_IMAGE only"))

    def test_copy_from_names_an_earlier_stage(self):
        self.assertIn("copy-from", rules(GOOD.replace("--from=builder", "--from=bilder")))

    def test_the_final_stage_says_how_it_is_probed(self):
        self.assertIn("probe", rules(GOOD.replace("# probe: gRPC health on the server port\n", "")))

    def test_the_builder_installs_exactly_the_dev_packages(self):
        self.assertIn("dev-packages", rules(GOOD, dev="PACKAGES=(\n  g++ libfoo-dev libbar-dev\n)\n"))
        self.assertIn("dev-packages", rules(GOOD, dev="PACKAGES=(\n  g++\n)\n"))

    def test_dockerignore_keeps_build_outputs_and_git_out(self):
        self.assertEqual(dockerfile_rules.check_dockerignore(".git\nbazel-*\n**/node_modules\n"), [])
        self.assertEqual(len(dockerfile_rules.check_dockerignore(".git\n**/node_modules\n")), 1)
        self.assertEqual(len(dockerfile_rules.check_dockerignore(None)), 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
