"""Offline rules for the Dockerfiles under deploy/docker/ (no Dockerfile linter is
packaged for Debian 12, and base images cannot be pulled here).

check_dockerfile() parses one Dockerfile into stages and returns the broken rules as
messages "NAME:LINE: rule: what is wrong"; check_dockerignore() does the same for the
root .dockerignore. The rules:

- multi-stage: at least two FROM;
- every external base image has a tag other than `latest` (a digest is welcome);
- the final stage derives from a pinned debian:bookworm / debian:bookworm-slim (optionally
  date-stamped, optionally with a digest) or from the CUDA base build argument
  (BASE_IMAGE, whose default must itself be pinned);
- the final stage sets a numeric, non-zero USER (Kubernetes' runAsNonRoot can only
  verify a numeric one);
- the final stage installs no compiler, build tool or -dev package;
- every apt-get install uses --no-install-recommends, runs apt-get update in the same
  step and removes /var/lib/apt/lists in that step;
- every variable used is declared where Docker can see it: FROM lines use ARGs declared
  before the first FROM; other instructions use an ARG declared earlier in the stage or
  an ENV of the stage (or of the stage it derives from). In RUN, upper-case names are
  build arguments by this project's convention and must be declared likewise (names
  assigned in the command itself excepted); lower-case ones are shell locals;
- every ARG is documented in a `#   NAME ...` comment line (and, when the README text
  is given, named in k8s/README.md);
- COPY --from names an earlier stage;
- the final stage has a HEALTHCHECK or a `# probe:` comment saying how it is probed;
- the stage named `builder` installs exactly ./dev's PACKAGES.

  python3 deploy/dockerfile_rules.py [REPO_ROOT]   checks the repository's files
"""

import glob
import os
import re
import shlex
import sys

FINAL_BASE = re.compile(r"^debian:bookworm(-\d{8})?(-slim)?(@sha256:[0-9a-f]{64})?$")
CUDA_BASE_ARG = "BASE_IMAGE"
FORBIDDEN_RUNTIME = re.compile(
    r"^(g\+\+(-\d+)?|gcc(-\d+)?|cpp(-\d+)?|c\+\+|clang.*|llvm.*|bazel.*|build-essential|make|"
    r"cmake|ninja-build|cuda-nvcc.*|cuda-toolkit.*|nvidia-cuda-toolkit|.*-dev)$")
VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?:[:#%/][^}]*)?\}|([A-Za-z_][A-Za-z0-9_]*))")
# Variables the shell or Docker always provides.
ALWAYS_SET = {"PATH", "HOME", "PWD", "HOSTNAME", "IFS", "TARGETPLATFORM", "TARGETARCH",
              "TARGETOS", "TARGETVARIANT", "BUILDPLATFORM", "BUILDARCH", "BUILDOS"}


class Instruction:
    def __init__(self, keyword, args, line):
        self.keyword = keyword  # upper case
        self.args = args  # the rest of the instruction, continuations joined
        self.line = line  # 1-based line of the keyword


class Stage:
    def __init__(self, index, base, name, line):
        self.index = index
        self.base = base  # as written after FROM (flags removed)
        self.name = name  # the AS name, or None
        self.line = line
        self.instructions = []
        self.comments = []  # (line, text) of comment lines inside the stage


def parse(text):
    """Returns (global ARG instructions, stages, all comment lines)."""
    global_args, stages, comments = [], [], []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        raw = lines[i]
        start = i + 1
        stripped = raw.strip()
        i += 1
        if not stripped:
            continue
        if stripped.startswith("#"):
            comments.append((start, stripped))
            if stages:
                stages[-1].comments.append((start, stripped))
            continue
        parts = [stripped]
        while parts[-1].endswith("\\") and i < len(lines):
            parts[-1] = parts[-1][:-1]
            nxt = lines[i].strip()
            i += 1
            if nxt.startswith("#"):
                continue  # Docker drops comment lines inside a continuation
            parts.append(nxt)
        joined = " ".join(p.strip() for p in parts).strip()
        keyword, _, args = joined.partition(" ")
        instruction = Instruction(keyword.upper(), args.strip(), start)
        if instruction.keyword == "FROM":
            words = [w for w in instruction.args.split() if not w.startswith("--")]
            base = words[0] if words else ""
            name = words[2] if len(words) >= 3 and words[1].lower() == "as" else None
            stages.append(Stage(len(stages), base, name, start))
        elif not stages:
            if instruction.keyword == "ARG":
                global_args.append(instruction)
        else:
            stages[-1].instructions.append(instruction)
    return global_args, stages, comments


def arg_name_default(instruction):
    name, eq, default = instruction.args.partition("=")
    default = default.strip()
    if len(default) >= 2 and default[0] == default[-1] and default[0] in "\"'":
        default = default[1:-1]
    return name.strip(), (default if eq else None)


def variables(text):
    return {a or b for a, b in VARIABLE.findall(text)}


def substitute(text, values):
    return VARIABLE.sub(lambda m: values.get(m.group(1) or m.group(2), m.group(0)), text)


def is_pinned(image):
    if "@sha256:" in image:
        return True
    last = image.rsplit("/", 1)[-1]
    return ":" in last and not last.endswith(":latest")


def apt_installs(command):
    """(segment, packages) for each apt-get/apt install in a shell command."""
    found = []
    for segment in re.split(r"&&|\|\||;|\|", command):
        try:
            words = shlex.split(segment)
        except ValueError:
            words = segment.split()
        for k, word in enumerate(words):
            if word in ("apt-get", "apt") and "install" in words[k + 1:]:
                rest = words[words.index("install", k + 1) + 1:]
                found.append((segment, [w for w in rest if not w.startswith("-")]))
                break
    return found


def dev_packages(dev_text):
    """PACKAGES=( ... ) of ./dev, comments dropped."""
    match = re.search(r"^PACKAGES=\((.*?)^\)", dev_text, re.S | re.M)
    if not match:
        return None
    words = []
    for line in match.group(1).split("\n"):
        words += line.split("#", 1)[0].split()
    return words


def stage_chain(stages, stage):
    """The stage and the local stages it derives from, nearest first."""
    chain, by_name = [stage], {s.name: s for s in stages if s.name}
    while chain[-1].base in by_name and by_name[chain[-1].base].index < chain[-1].index:
        chain.append(by_name[chain[-1].base])
    return chain


def check_dockerfile(text, name="Dockerfile", dev_text=None, readme_text=None):
    problems = []

    def report(line, rule, message):
        problems.append(f"{name}:{line}: {rule}: {message}")

    global_args, stages, comments = parse(text)
    if len(stages) < 2:
        report(stages[0].line if stages else 1, "multi-stage",
               f"{len(stages)} FROM; a build stage and a runtime stage are needed")
        if not stages:
            return problems
    global_values = {}
    for arg in global_args:
        key, default = arg_name_default(arg)
        global_values[key] = default if default is not None else ""
    stage_names = {}
    for stage in stages:
        check_from(stage, global_values, stage_names, report)
        check_stage_variables(stage, stages, stage_names, report)
        check_copies(stage, stage_names, report)
        for instruction in stage.instructions:
            if instruction.keyword == "RUN":
                check_apt(instruction, report)
        if stage.name:
            stage_names[stage.name] = stage
    final = stages[-1]
    check_final(final, stages, global_values, report)
    check_arg_docs(global_args, stages, comments, readme_text, report)
    if dev_text is not None:
        check_builder_packages(stages, dev_text, report)
    return problems


def check_from(stage, global_values, stage_names, report):
    for var in variables(stage.base):
        if var not in global_values:
            report(stage.line, "undeclared-arg",
                   f"FROM uses ${var}, which no ARG before the first FROM declares")
    image = substitute(stage.base, global_values)
    if image in stage_names or image == "scratch":
        return
    if not is_pinned(image):
        report(stage.line, "pinned-base", f"base image {image!r} has no tag or is :latest")


def check_stage_variables(stage, stages, stage_names, report):
    declared = set(ALWAYS_SET)
    parent = stage_names.get(stage.base)
    while parent is not None:  # ENV (not ARG) carries over to a derived stage
        declared |= {env_name for ins in parent.instructions if ins.keyword == "ENV"
                     for env_name in env_names(ins.args)}
        parent = stage_names.get(parent.base)
    for instruction in stage.instructions:
        if instruction.keyword == "ARG":
            declared.add(arg_name_default(instruction)[0])
            continue
        used = variables(instruction.args)
        if instruction.keyword == "RUN":
            assigned = set(re.findall(r"(?:^|[\s;&(|])([A-Za-z_][A-Za-z0-9_]*)=", instruction.args))
            assigned |= set(re.findall(r"\bfor\s+([A-Za-z_][A-Za-z0-9_]*)\s+in\b", instruction.args))
            used = {v for v in used if v == v.upper()}
            used -= assigned
        for var in sorted(used - declared):
            report(instruction.line, "undeclared-arg",
                   f"{instruction.keyword} uses ${var}, which this stage does not declare "
                   f"(ARG {var} inside the stage; a global ARG is only visible to FROM)")
        if instruction.keyword == "ENV":
            declared |= set(env_names(instruction.args))


def env_names(args):
    if "=" in args.split(" ", 1)[0]:
        return [w.split("=", 1)[0] for w in shlex.split(args) if "=" in w]
    return [args.split(" ", 1)[0]]


def check_copies(stage, stage_names, report):
    for instruction in stage.instructions:
        if instruction.keyword not in ("COPY", "ADD"):
            continue
        match = re.search(r"--from=(\S+)", instruction.args)
        if not match:
            continue
        source = match.group(1)
        if source.isdigit():
            if int(source) >= stage.index:
                report(instruction.line, "copy-from", f"--from={source} is not an earlier stage")
        elif source not in stage_names:
            report(instruction.line, "copy-from",
                   f"--from={source} names no earlier stage (declare images as stages)")


def check_apt(instruction, report):
    command = instruction.args
    installs = apt_installs(command)
    if not installs:
        return
    for segment, _ in installs:
        if "--no-install-recommends" not in segment:
            report(instruction.line, "apt", "apt-get install without --no-install-recommends")
    if "apt-get update" not in command and "apt update" not in command:
        report(instruction.line, "apt", "apt-get install without apt-get update in the same RUN")
    if not re.search(r"rm -rf /var/lib/apt/lists(/\*?)?", command):
        report(instruction.line, "apt",
               "apt-get install without rm -rf /var/lib/apt/lists/* in the same RUN")


def check_final(final, stages, global_values, report):
    chain = stage_chain(stages, final)
    root = chain[-1]
    image = substitute(root.base, global_values)
    raw = root.base.strip()
    uses_cuda_arg = raw in ("${%s}" % CUDA_BASE_ARG, "$" + CUDA_BASE_ARG)
    if not FINAL_BASE.match(image) and not uses_cuda_arg:
        report(root.line, "final-base",
               f"final stage derives from {image!r}; expected a pinned debian:bookworm(-slim) "
               f"or ${{{CUDA_BASE_ARG}}}")
    user = None
    for stage in reversed(chain):
        for instruction in stage.instructions:
            if instruction.keyword == "USER":
                user = (instruction.args.strip(), instruction.line)
    if user is None:
        report(final.line, "non-root", "final stage sets no USER (it would run as root)")
    else:
        uid = substitute(user[0], stage_arg_defaults(final, global_values)).split(":")[0]
        if not uid.isdigit():
            report(user[1], "non-root", f"USER {user[0]!r}: use a numeric UID (runAsNonRoot "
                                        "cannot verify a name)")
        elif int(uid) == 0:
            report(user[1], "non-root", f"USER {user[0]!r} is root")
    for stage in chain:
        for instruction in stage.instructions:
            if instruction.keyword != "RUN":
                continue
            for _, packages in apt_installs(instruction.args):
                for package in packages:
                    if FORBIDDEN_RUNTIME.match(package.split("=")[0].split(":")[0]):
                        report(instruction.line, "runtime-only",
                               f"final stage installs {package} (a compiler, build tool or "
                               "-dev package)")
    probed = any(ins.keyword == "HEALTHCHECK" for s in chain for ins in s.instructions)
    probed = probed or any(text.startswith("# probe:") for s in chain for _, text in s.comments)
    if not probed:
        report(final.line, "probe",
               "final stage has neither a HEALTHCHECK nor a '# probe:' comment saying how it is "
               "probed")


def stage_arg_defaults(stage, global_values):
    values = {}
    for instruction in stage.instructions:
        if instruction.keyword == "ARG":
            key, default = arg_name_default(instruction)
            values[key] = default if default is not None else global_values.get(key, "")
    return values


def check_arg_docs(global_args, stages, comments, readme_text, report):
    arg_lines = {}
    for instruction in global_args + [i for s in stages for i in s.instructions]:
        if instruction.keyword == "ARG":
            arg_lines.setdefault(arg_name_default(instruction)[0], instruction.line)
    for arg, line in sorted(arg_lines.items()):
        if not any(re.match(r"#\s+%s\b" % re.escape(arg), text) for _, text in comments):
            report(line, "arg-docs", f"ARG {arg} is not described in a '#   {arg} ...' comment")
        if readme_text is not None and not re.search(r"\b%s\b" % re.escape(arg), readme_text):
            report(line, "arg-docs", f"ARG {arg} is not described in k8s/README.md")


def check_builder_packages(stages, dev_text, report):
    wanted = dev_packages(dev_text)
    if wanted is None:
        report(1, "dev-packages", "./dev has no PACKAGES=( ... ) list")
        return
    builder = next((s for s in stages if s.name == "builder"), None)
    if builder is None:
        report(1, "dev-packages", "no stage named 'builder'")
        return
    installed = [p for ins in builder.instructions if ins.keyword == "RUN"
                 for _, packages in apt_installs(ins.args) for p in packages]
    missing = sorted(set(wanted) - set(installed))
    extra = sorted(set(installed) - set(wanted))
    if missing or extra:
        report(builder.line, "dev-packages",
               "builder's apt packages differ from ./dev PACKAGES: missing "
               f"{' '.join(missing) or '-'}; extra {' '.join(extra) or '-'}")


def check_dockerignore(text, name=".dockerignore"):
    if text is None:
        return [f"{name}:1: dockerignore: missing"]
    patterns = {line.strip() for line in text.split("\n")
                if line.strip() and not line.strip().startswith("#")}
    problems = []
    for needed, accepted in (("bazel-*", {"bazel-*", "/bazel-*", "bazel-*/"}),
                             ("node_modules", {"**/node_modules", "node_modules",
                                               "**/node_modules/"}),
                             (".git", {".git", "/.git", ".git/"})):
        if not patterns & accepted:
            problems.append(f"{name}:1: dockerignore: does not exclude {needed}")
    return problems


def check_repository(root):
    def read(path):
        full = os.path.join(root, path)
        if not os.path.exists(full):
            return None
        with open(full, encoding="utf-8") as f:
            return f.read()

    dev_text = read("dev")
    readme = read("k8s/README.md")
    problems = []
    if readme is None:
        problems.append("k8s/README.md:1: arg-docs: missing")
    dockerfiles = sorted(glob.glob(os.path.join(root, "deploy/docker/*Dockerfile")))
    if not dockerfiles:
        problems.append("deploy/docker:1: dockerfiles: none found")
    for path in dockerfiles:
        rel = os.path.relpath(path, root)
        problems += check_dockerfile(read(rel), rel, dev_text, readme)
    problems += check_dockerignore(read(".dockerignore"))
    return dockerfiles, problems


def main(argv):
    root = argv[1] if len(argv) > 1 else os.getcwd()
    dockerfiles, problems = check_repository(root)
    for problem in problems:
        print(problem)
    print(f"dockerfile rules: {len(dockerfiles)} Dockerfiles, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
