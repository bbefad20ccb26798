"""Compile and run programs in Python, Java, JavaScript, C, C++ and Go in the sandbox.

SODA's static tool-based execution (§3.3.2 of the paper): a solution is a "Pass" when
it compiles and runs without errors (and, when tests are given, prints the expected
output for each input).  Both steps run in ``scoder.sandbox``, each as its own
fresh unprivileged process with its own limits and timeout; they share one private
work dir (the compiled artefacts, Go's build cache and ``HOME`` live there) that is
deleted afterwards; each run starts from what the build left there (a run's own
writes are dropped, where the sandbox has its tmpfs).  Usage::

    run_program("c", "#include <stdio.h>\\nint main(){puts(\\"hi\\");}").stdout   # "hi\\n"
    check_program("go", source, [("1 2\\n", "3\\n")]).reason               # "pass"

Toolchains come from Debian packages (``./install.sh`` installs the missing ones);
a language whose compiler or runtime is not on the sandbox's PATH is reported as
``toolchain_missing`` with the command's name, never run another way.

Memory: ``memory_mb`` is what the program may use for its data.  C, C++ and Python
get exactly that as address-space cap.  The JVM, V8 and the Go runtime reserve far
more address space than they touch (about 700 MB for "hello world"), so their cap is
``memory_mb + runtime_overhead_mb`` (1 GiB) and the runtime's own heap limit holds the
program to ``memory_mb``: ``-Xmx`` for Java, ``--max-old-space-size`` for Node.js,
``GOMEMLIMIT`` (a soft limit: the address-space cap is the hard one) for Go.  The
JVM runs with the serial GC and the C1 compiler only (few threads, fast start-up).

As in the paper, environment issues (a Python module or C header that is not
installed) are not counted as the solution's failure (``environment_error``,
``passed`` unless ``ignore_environment_errors=False``), and a Java file is named after
its public class so that javac's file-name rule cannot fail a solution.
"""
from __future__ import annotations

import re
import shutil
import sys
import time
from dataclasses import dataclass, field

from scoder.sandbox import SANDBOX_PATH, SandboxResult, new_work_dir, remove_work_dir, run_command

# Outcomes, in the order a program meets them.
STATUSES = ("pass", "toolchain_missing", "compile_error", "environment_error",
            "timeout", "runtime_error", "wrong_answer")
_JVM = ("-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:CompressedClassSpaceSize=64m",
        "-XX:ReservedCodeCacheSize=64m", "-XX:-UsePerfData", "-Xshare:auto")


@dataclass(frozen=True)
class LanguageSpec:
    """How to build and run one language.  In ``compile``/``run`` argv and ``env``
    values, ``{source}``, ``{main}`` (Java's main class), ``{memory_mb}`` (the step's
    memory budget) and ``{work}`` (the work dir) are filled in."""
    name: str
    source: str  # file name of the program
    run: tuple[str, ...]
    compile: tuple[str, ...] = ()  # empty: nothing to build
    env: tuple[tuple[str, str], ...] = ()
    runtime_overhead_mb: int = 0  # address space the runtime reserves beyond its heap
    reach: tuple[str, ...] = ()  # extra paths the sandbox uid must be able to enter
    # stderr patterns of environment issues the paper does not count against a solution
    environment_errors: tuple[str, ...] = ()


_PY = (sys.executable, "-I")
LANGUAGES: dict[str, LanguageSpec] = {spec.name: spec for spec in (
    LanguageSpec("python", "main.py", run=(*_PY, "{source}"),
                 # a syntax check as the build step, so a syntax error reads as one
                 compile=(*_PY, "-c", "import sys; compile(open(sys.argv[1], 'rb').read(), "
                          "sys.argv[1], 'exec')", "{source}"),
                 reach=tuple(sorted({sys.base_prefix, sys.prefix})),
                 environment_errors=(r"ModuleNotFoundError: No module named",)),
    LanguageSpec("javascript", "main.js", run=("node", "--max-old-space-size={memory_mb}", "{source}"),
                 compile=("node", "--check", "{source}"), runtime_overhead_mb=1024,
                 environment_errors=(r"Cannot find module '[^./]", r"ERR_MODULE_NOT_FOUND")),
    LanguageSpec("c", "main.c", run=("./main",), compile=("gcc", "-O2", "-o", "main", "{source}", "-lm"),
                 environment_errors=(r"fatal error: [^:\n]+\.h: No such file or directory",)),
    LanguageSpec("cpp", "main.cpp", run=("./main",),
                 compile=("g++", "-O2", "-std=gnu++17", "-o", "main", "{source}"),
                 environment_errors=(r"fatal error: [^:\n]+: No such file or directory",)),
    LanguageSpec("java", "{main}.java", run=("java", "-Xmx{memory_mb}m", *_JVM, "-cp", ".", "{main}"),
                 compile=("javac", "-J-Xmx{memory_mb}m", *(f"-J{f}" for f in _JVM),
                          "-encoding", "UTF-8", "-d", ".", "{source}"),
                 runtime_overhead_mb=1024,
                 environment_errors=(r"error: package (?!java\.|javax\.)\S+ does not exist",)),
    LanguageSpec("go", "main.go", run=("./main",), compile=("go", "build", "-o", "main", "{source}"),
                 # a private build cache per program: a shared one could be poisoned
                 env=(("GOCACHE", "{work}/.cache/go-build"), ("GOPATH", "{work}/go"),
                      ("GOMEMLIMIT", "{memory_mb}MiB"), ("GOPROXY", "off"), ("GOFLAGS", "-p=1"),
                      ("GOTOOLCHAIN", "local"), ("GOTELEMETRY", "off")),
                 runtime_overhead_mb=1024,
                 environment_errors=(r"is not in GOROOT", r"no required module provides package",
                                     r"cannot find package")),
)}
ALIASES = {"py": "python", "python3": "python", "js": "javascript", "node": "javascript",
           "c++": "cpp", "cxx": "cpp", "golang": "go"}


@dataclass
class ProgramResult:
    """One program's build and run; ``status`` is one of ``STATUSES``."""
    language: str
    status: str
    detail: str = ""  # why, in one line (the compiler's first error, the exception, ...)
    stdout: str = ""
    stderr: str = ""
    missing_command: str | None = None
    compile: SandboxResult | None = None
    run: SandboxResult | None = None
    wall_time: float = 0.0

    @property
    def passed(self) -> bool:
        return self.status == "pass"


@dataclass
class CheckResult:
    """Pass/Fail of a solution with the reason (a ``STATUSES`` entry) and its detail."""
    language: str
    passed: bool
    reason: str
    detail: str = ""
    tests_passed: int = 0
    tests_total: int = 0
    results: list[ProgramResult] = field(default_factory=list)


def language_spec(language: str | LanguageSpec) -> LanguageSpec:
    """The spec of ``language`` (a name, an alias or a spec)."""
    if isinstance(language, LanguageSpec):
        return language
    name = ALIASES.get(language.lower(), language.lower())
    if name not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}; expected one of {sorted(LANGUAGES)}")
    return LANGUAGES[name]


def missing_toolchain(language: str | LanguageSpec) -> str | None:
    """The first command of ``language``'s build or run that the sandbox cannot find."""
    spec = language_spec(language)
    for argv in (spec.compile, spec.run):
        if argv and not argv[0].startswith("./") and not shutil.which(argv[0], path=SANDBOX_PATH):
            return argv[0]
    return None


def run_program(language: str | LanguageSpec, source: str, *, stdin: str | None = None,
                timeout: float = 10.0, compile_timeout: float = 60.0, memory_mb: int = 1024,
                compile_memory_mb: int = 2048, max_processes: int = 64) -> ProgramResult:
    """Build ``source`` (if the language has a build step), then run it once on ``stdin``."""
    return _build_and_run(language, source, [(stdin, None)], timeout=timeout,
                          compile_timeout=compile_timeout, memory_mb=memory_mb,
                          compile_memory_mb=compile_memory_mb, max_processes=max_processes)[0]


def check_program(language: str | LanguageSpec, solution: str,
                  tests: list[tuple[str | None, str | None]] | tuple = (), *,
                  ignore_environment_errors: bool = True, **limits) -> CheckResult:
    """SODA's Pass/Fail: builds ``solution`` once and runs it on each ``(stdin, expected
    stdout)`` of ``tests`` up to the first failure (expected None: a clean exit is
    enough); without tests, one run without input.  Output is compared with trailing
    whitespace ignored.  ``limits``: ``run_program``'s keyword arguments."""
    tests = list(tests) or [(None, None)]
    results = _build_and_run(language, solution, tests, **limits)
    name = language_spec(language).name
    last = results[-1]
    passed = sum(r.passed for r in results)
    ok = last.passed or (last.status == "environment_error" and ignore_environment_errors)
    return CheckResult(name, ok, last.status, last.detail, passed, len(tests), results)


def _build_and_run(language, source: str, tests: list[tuple[str | None, str | None]], *,
                   timeout: float = 10.0, compile_timeout: float = 60.0, memory_mb: int = 1024,
                   compile_memory_mb: int = 2048, max_processes: int = 64) -> list[ProgramResult]:
    """Build once, then run on each (stdin, expected) until one fails."""
    spec = language_spec(language)
    start = time.monotonic()
    missing = missing_toolchain(spec)
    if missing:
        return [ProgramResult(spec.name, "toolchain_missing", missing_command=missing,
                              detail=f"{missing!r} not found on {SANDBOX_PATH} "
                                     "(./install.sh installs the Debian packages)")]
    work = new_work_dir()
    try:
        stem, main = _java_main(source)
        names = {"source": spec.source.format(main=stem), "main": main, "work": work}
        build = None
        if spec.compile:
            build = _step(spec, spec.compile, names, {names["source"]: source}, work,
                          compile_timeout, compile_memory_mb, max(max_processes, 256), None)
            failed = _failure(spec, build, "compile")
            if failed:
                return [ProgramResult(spec.name, *failed, build.stdout, build.stderr,
                                      compile=build, wall_time=time.monotonic() - start)]
        results = []
        for stdin, expected in tests:
            files = None if build is not None else {names["source"]: source}
            ran = _step(spec, spec.run, names, files, work, timeout, memory_mb, max_processes, stdin,
                        keep_writes=False)  # each test starts from the build
            status, detail = _failure(spec, ran, "run") or ("pass", "")
            if status == "pass" and expected is not None and _norm(ran.stdout) != _norm(expected):
                status = "wrong_answer"
                detail = f"expected {_short(expected)!r}, got {_short(ran.stdout)!r}"
            results.append(ProgramResult(spec.name, status, detail, ran.stdout, ran.stderr,
                                         compile=build, run=ran,
                                         wall_time=time.monotonic() - start))
            start = time.monotonic()
            if status != "pass":
                break
        return results
    finally:
        remove_work_dir(work)


def _step(spec: LanguageSpec, argv, names: dict, files, work: str, timeout: float,
          memory_mb: int, max_processes: int, stdin: str | None,
          keep_writes: bool = True) -> SandboxResult:
    fill = {**names, "memory_mb": memory_mb}
    result = run_command([a.format(**fill) for a in argv], files, timeout=timeout,
                         memory_mb=memory_mb + spec.runtime_overhead_mb,
                         max_processes=max_processes, stdin=stdin, work_dir=work,
                         keep_writes=keep_writes,
                         env={k: v.format(**fill) for k, v in spec.env}, reach=spec.reach)
    if result.setup_error:  # a broken sandbox must not read as a failed solution
        raise RuntimeError(f"sandbox failed for {spec.name} {argv[0]}: {result.setup_error}")
    return result


def _failure(spec: LanguageSpec, r: SandboxResult, stage: str) -> tuple[str, str] | None:
    """(status, detail) of a failed step, None when it succeeded."""
    if r.passed:
        return None
    if r.timed_out:
        return "timeout", f"{stage}: {r.killed_reason}"
    environment = next((ln for ln in r.stderr.splitlines()
                        if any(re.search(p, ln) for p in spec.environment_errors)), None)
    if environment:
        return "environment_error", f"{stage}: {environment.strip()[:300]}"
    status = "compile_error" if stage == "compile" else "runtime_error"
    # tsc reports its errors on stdout
    detail = r.killed_reason or (_first_error(r.stderr or r.stdout) if stage == "compile" else _exception(r))
    return status, f"{stage}: {detail}"


def _java_main(source: str) -> tuple[str, str]:
    """(file stem, class to run): the public top-level class names the file; the class
    that declares ``main`` (the last one opened before it) is run.  A regex heuristic."""
    public = re.search(r"\bpublic\s+(?:(?:final|abstract|strictfp|sealed)\s+)*"
                       r"(?:class|interface|enum|record)\s+([A-Za-z_$][\w$]*)", source)
    main_at = re.search(r"\bstatic\s+(?:final\s+)?void\s+main\s*\(", source)
    declared = [m for m in re.finditer(r"\b(?:class|interface|enum|record)\s+([A-Za-z_$][\w$]*)",
                                       source) if not main_at or m.start() < main_at.start()]
    stem = public.group(1) if public else "Main"
    return stem, declared[-1].group(1) if declared else stem


def _first_error(stderr: str) -> str:
    """The compiler's first error: a line saying error (gcc, javac, SyntaxError), else
    the first ``file:line:col: message`` (go), else the first line."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for pattern in (r"\berror\b|\w+Error\b", r"^\S+:\d+:\d+: "):
        for ln in lines:
            if re.search(pattern, ln):
                return ln[:300]
    return lines[0][:300] if lines else "failed without a message"


def _exception(r: SandboxResult) -> str:
    """The line naming the error: Python's last traceback line, Java's "Exception in
    thread", Go's "panic:", Node's "TypeError: ..."; else the last line."""
    lines = [ln.strip() for ln in r.stderr.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if re.match(r"([\w.]*(Error|Exception)\b|Exception in thread|panic:|fatal error:)", ln):
            return ln[:300]
    return lines[-1][:300] if lines else f"exit code {r.returncode}"


def _norm(text: str) -> str:
    return "\n".join(ln.rstrip() for ln in text.strip("\n").splitlines()).rstrip()


def _short(text: str, n: int = 80) -> str:
    return text if len(text) <= n else text[:n] + "..."
