"""Compiled templates kept in the user's cache: a second process reads them instead of
compiling, a changed template is compiled again, and the rendered text is the same either way."""
import subprocess
import sys

from fpgaq.backends import templates


def _render(tmp_path, cache_home, source: str) -> str:
    """Render the template in a fresh process (a fresh environment) with this user cache."""
    code = ("import sys, jinja2; from fpgaq.backends import templates as t; "
            "env = jinja2.Environment(loader=jinja2.FileSystemLoader(sys.argv[1]), "
            "bytecode_cache=t._bytecode_cache(), **t.OPTIONS); "
            "print(env.get_template('x.j2').render(n=3), end='')")
    (tmp_path / "x.j2").write_text(source)
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
                       env={"XDG_CACHE_HOME": str(cache_home), "PATH": ""})
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_compiled_templates_are_reused_and_follow_changes(tmp_path):
    home = tmp_path / "cache"
    assert _render(tmp_path, home, "{% for i in range(n) %}{{ i }}\n{% endfor %}") == "0\n1\n2\n"
    (stored,) = list((home / "fpgaq" / "jinja").rglob("*.cache"))
    first = stored.stat().st_mtime_ns
    assert _render(tmp_path, home, "{% for i in range(n) %}{{ i }}\n{% endfor %}") == "0\n1\n2\n"
    assert stored.stat().st_mtime_ns == first            # read, not written again
    assert _render(tmp_path, home, "{{ n * 2 }}") == "6"  # changed source: compiled again
    stored.write_bytes(b"garbage")                         # a damaged entry is not used
    assert _render(tmp_path, home, "{{ n * 2 }}") == "6"


def test_no_cache_where_it_cannot_be_written(tmp_path, monkeypatch):
    blocked = tmp_path / "file"
    blocked.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    assert templates._bytecode_cache() is None
