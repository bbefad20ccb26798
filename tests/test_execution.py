"""SODA's multi-language execution: a correct program passes, a faulty one fails with the
right reason, in each of the six languages; missing toolchains are reported."""
import dataclasses
import os
import textwrap
from pathlib import Path

import pytest

from scoder.execution import LANGUAGES, check_program, missing_toolchain, run_program

# Each language: a correct sum of two numbers from stdin, a logical error (wrong
# answer), a crash at run time and a program that does not compile.
PROGRAMS = {
    "python": {
        "correct": "a, b = map(int, input().split())\nprint(a + b)\n",
        "wrong": "a, b = map(int, input().split())\nprint(a - b)\n",
        "crash": "a, b = map(int, input().split())\nprint(a // (b - b))\n",
        "broken": "a, b = map(int, input().split()\nprint(a + b)\n",
    },
    "javascript": {
        "correct": "const [a, b] = require('fs').readFileSync(0, 'utf8').trim().split(/\\s+/).map(Number);\n"
                   "console.log(a + b);\n",
        "wrong": "const [a, b] = require('fs').readFileSync(0, 'utf8').trim().split(/\\s+/).map(Number);\n"
                 "console.log(a * b);\n",
        "crash": "const x = undefined;\nconsole.log(x.length);\n",
        "broken": "function f( {\n  return 1;\n}\n",
    },
    "c": {
        "correct": "#include <stdio.h>\nint main(void){long a,b;scanf(\"%ld %ld\",&a,&b);"
                   "printf(\"%ld\\n\",a+b);return 0;}\n",
        "wrong": "#include <stdio.h>\nint main(void){long a,b;scanf(\"%ld %ld\",&a,&b);"
                 "printf(\"%ld\\n\",a-b);return 0;}\n",
        "crash": "#include <stdio.h>\nint main(void){int *p = 0; *p = 1; printf(\"%d\\n\", *p);return 0;}\n",
        "broken": "#include <stdio.h>\nint main(void){ printf(\"%d\\n\", undefined_variable); }\n",
    },
    "cpp": {
        "correct": "#include <iostream>\nint main(){long a,b;std::cin>>a>>b;std::cout<<a+b<<\"\\n\";}\n",
        "wrong": "#include <iostream>\nint main(){long a,b;std::cin>>a>>b;std::cout<<a<<\"\\n\";}\n",
        "crash": "#include <stdexcept>\nint main(){throw std::runtime_error(\"boom\");}\n",
        "broken": "#include <iostream>\nint main(){std::string s = 5;}\n",
    },
    "java": {
        # named after its class (not Main), as models often write it
        "correct": "import java.util.Scanner;\npublic class Solution {\n  public static void main(String[] args) {\n"
                   "    Scanner in = new Scanner(System.in);\n"
                   "    System.out.println(in.nextLong() + in.nextLong());\n  }\n}\n",
        "wrong": "import java.util.Scanner;\npublic class Main {\n  public static void main(String[] args) {\n"
                 "    Scanner in = new Scanner(System.in);\n    long a = in.nextLong(), b = in.nextLong();\n"
                 "    System.out.println(a + b + 1);\n  }\n}\n",
        "crash": "public class Main {\n  public static void main(String[] args) {\n"
                 "    int[] xs = new int[2];\n    System.out.println(xs[5]);\n  }\n}\n",
        "broken": "public class Main {\n  public static void main(String[] args) {\n"
                  "    int x = \"text\";\n  }\n}\n",
    },
    "go": {
        "correct": "package main\nimport \"fmt\"\nfunc main() {\n\tvar a, b int\n\tfmt.Scan(&a, &b)\n"
                   "\tfmt.Println(a + b)\n}\n",
        "wrong": "package main\nimport \"fmt\"\nfunc main() {\n\tvar a, b int\n\tfmt.Scan(&a, &b)\n"
                 "\tfmt.Println(a * 2)\n}\n",
        "crash": "package main\nimport \"fmt\"\nfunc main() {\n\tvar xs []int\n\tfmt.Println(xs[3])\n}\n",
        "broken": "package main\nimport \"fmt\"\nfunc main() {\n\tx := 1\n}\n",
    },
}
TESTS = [("1 2\n", "3\n"), ("40 2", "42")]


def _need(language: str) -> None:
    """Skip where the toolchain is missing, unless CI demands it (SCODER_REQUIRE_TOOLCHAINS=1)."""
    missing = missing_toolchain(language)
    if missing and os.environ.get("SCODER_REQUIRE_TOOLCHAINS") != "1":
        pytest.skip(f"{language}: {missing!r} is not installed (./install.sh installs it)")


@pytest.mark.parametrize("language", sorted(PROGRAMS))
def test_correct_passes_and_faulty_fails_with_the_reason(language):
    _need(language)
    programs = PROGRAMS[language]
    ok = check_program(language, programs["correct"], TESTS)
    assert ok.passed and ok.reason == "pass" and ok.tests_passed == ok.tests_total == 2, ok
    wrong = check_program(language, programs["wrong"], TESTS)
    assert not wrong.passed and wrong.reason == "wrong_answer" and "expected '3" in wrong.detail
    broken = run_program(language, programs["broken"])
    assert broken.status == "compile_error" and broken.run is None, broken
    assert broken.detail.startswith("compile: ") and broken.compile.returncode != 0


@pytest.mark.parametrize("language,error", [
    ("python", "ZeroDivisionError"), ("javascript", "TypeError"), ("c", "SIGSEGV"),
    ("cpp", "SIGABRT"), ("java", "ArrayIndexOutOfBoundsException"), ("go", "index out of range")])
def test_crash_is_a_runtime_error_named_in_the_detail(language, error):
    _need(language)
    crash = check_program(language, PROGRAMS[language]["crash"], [("1 2", None)])
    assert not crash.passed and crash.reason == "runtime_error"
    assert crash.detail.startswith("run: ") and error in crash.detail, crash.detail


def test_java_file_and_main_class_follow_the_source():
    """No public class, main in the second class: javac and java still find it."""
    _need("java")
    source = ("class Helper { static int twice(int x) { return 2 * x; } }\n"
              "class Program {\n  public static void main(String[] a) {\n"
              "    System.out.println(Helper.twice(21));\n  }\n}\n")
    assert check_program("java", source, [(None, "42")]).passed


def test_compile_errors_name_the_first_error():
    for language, message in (("c", "undefined_variable"), ("go", "not used"),
                              ("java", "incompatible types"), ("python", "SyntaxError")):
        _need(language)
        assert message in run_program(language, PROGRAMS[language]["broken"]).detail


@pytest.mark.parametrize("language", ["c", "java", "go"])
def test_endless_program_times_out(language):
    _need(language)
    source = {"c": "int main(void){ volatile long i = 0; for (;;) i++; }\n",
              "java": "public class Main { public static void main(String[] a) { while (true) {} } }\n",
              "go": "package main\nfunc main() {\n\tfor {\n\t}\n}\n"}[language]
    r = run_program(language, source, timeout=1.5)
    assert r.status == "timeout" and r.detail.startswith("run: timeout") and r.run.timed_out


def test_compile_step_has_its_own_timeout():
    _need("c")
    slow = dataclasses.replace(LANGUAGES["c"], compile=("sh", "-c", "sleep 30"))
    r = run_program(slow, PROGRAMS["c"]["correct"], compile_timeout=1, timeout=30)
    assert r.status == "timeout" and r.detail.startswith("compile: timeout after 1s")
    assert r.wall_time < 10


def test_a_compiler_that_reports_on_stdout_is_quoted():
    """tsc (MultiPL-E's TypeScript) prints its errors on stdout, not stderr."""
    _need("c")
    quiet = dataclasses.replace(LANGUAGES["c"], compile=(
        "sh", "-c", "echo 'main.ts(2,9): error TS2322: Type number is not assignable to type string.'; exit 2"))
    r = run_program(quiet, PROGRAMS["c"]["correct"])
    assert r.status == "compile_error" and r.detail == ("compile: main.ts(2,9): error TS2322: Type number is not "
                                                        "assignable to type string.")


@pytest.mark.parametrize("language,hog", [
    pytest.param("java", "public class Main { public static void main(String[] a) {\n"
             "  byte[][] keep = new byte[64][]; int mb = {MB};\n"
             "  for (int i = 0; i < mb / 16; i++) keep[i] = new byte[16 << 20];\n"
             "  System.out.println(\"ok \" + keep.length); } }\n", id="java"),
    pytest.param("go", "package main\nimport \"fmt\"\nfunc main() {\n\tb := make([]byte, {MB}<<20)\n"
                 "\tfor i := range b {\n\t\tb[i] = 1\n\t}\n\tfmt.Println(\"ok\", len(b))\n}\n", id="go"),
    pytest.param("javascript", "const keep = [];\n"
                 "for (let i = 0; i < {MB}; i++) keep.push(new Array(1 << 17).fill(i));\n"
                 "console.log('ok', keep.length);\n", id="javascript"),
    pytest.param("c", "#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\nint main(void){\n"
                 "  size_t n = (size_t){MB} << 20; char *p = malloc(n); if (!p) return 3;\n"
                 "  memset(p, 1, n); printf(\"ok %d\\n\", p[n - 1]); return 0; }\n", id="c"),
])
def test_memory_budget_holds_and_leaves_room_for_the_runtime(language, hog):
    """Half the budget works (the JVM's, V8's and Go's address-space reservations are
    not counted against it); twice the budget fails."""
    _need(language)
    small = run_program(language, hog.replace("{MB}", "96"), memory_mb=256, timeout=20)
    assert small.passed and small.stdout.startswith("ok"), small
    big = run_program(language, hog.replace("{MB}", "1024"), memory_mb=256, timeout=20)
    assert big.status == "runtime_error" and "ok" not in big.stdout, big


def toolchains() -> dict[str, str | None]:
    """language -> the missing command, or None when it can run here."""
    return {name: missing_toolchain(name) for name in LANGUAGES}


def test_missing_toolchain_is_reported_not_faked():
    fake = dataclasses.replace(LANGUAGES["java"], compile=("no-such-javac-xyz", "{source}"))
    assert missing_toolchain(fake) == "no-such-javac-xyz"
    r = run_program(fake, PROGRAMS["java"]["correct"], stdin="1 2")
    assert r.status == "toolchain_missing" and r.missing_command == "no-such-javac-xyz"
    assert r.compile is None and r.run is None and not r.passed
    check = check_program(fake, PROGRAMS["java"]["correct"], TESTS)
    assert not check.passed and check.reason == "toolchain_missing"
    assert set(toolchains()) == {"python", "javascript", "c", "cpp", "java", "go"}
    with pytest.raises(ValueError, match="unknown language"):
        run_program("cobol", "")


def test_environment_issues_are_not_the_solutions_fault():
    """As in the paper: a module that is not installed does not fail a solution."""
    r = check_program("python", "import no_such_module_xyz\nprint(1)\n")
    assert r.passed and r.reason == "environment_error" and "no_such_module_xyz" in r.detail
    strict = check_program("python", "import no_such_module_xyz\n", ignore_environment_errors=False)
    assert not strict.passed and strict.reason == "environment_error"


@pytest.fixture
def victim():
    """A world-writable file in the repo: only the sandbox's read-only mounts protect it."""
    path = Path(__file__).resolve().parents[1] / f".execution-victim-{os.getpid()}"
    path.write_text("precious")
    path.chmod(0o666)
    yield path
    path.unlink(missing_ok=True)


def test_hostile_compiled_program_is_contained(victim):
    _need("c")
    source = textwrap.dedent(f"""
        #include <stdio.h>
        #include <signal.h>
        #include <unistd.h>
        #include <sys/socket.h>
        #include <netinet/in.h>
        #include <arpa/inet.h>
        int main(void) {{
            FILE *f = fopen("{victim}", "w");
            printf("write %s\\n", f ? "ok" : "refused");
            printf("unlink %s\\n", unlink("{victim}") == 0 ? "ok" : "refused");
            int s = socket(AF_INET, SOCK_STREAM, 0);
            struct sockaddr_in a = {{0}};
            a.sin_family = AF_INET; a.sin_port = htons(22); a.sin_addr.s_addr = inet_addr("127.0.0.1");
            printf("connect %s\\n", connect(s, (struct sockaddr *)&a, sizeof a) == 0 ? "ok" : "refused");
            fflush(stdout);
            kill(getppid(), SIGKILL);
            kill(-1, SIGKILL);
            while (fork() >= 0 || 1) {{ }}
        }}
    """)
    r = run_program("c", source, timeout=3)
    assert not r.passed and r.status in ("timeout", "runtime_error")
    assert "ok" not in r.stdout and r.stdout.count("refused") == 3
    assert victim.read_text() == "precious"
