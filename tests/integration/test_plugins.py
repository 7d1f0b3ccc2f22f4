"""Plugin loading: the search path and every refusal, with deliberately
broken plugins built for the tests (tests/plugins/broken.c)."""
import os
import re
import shutil

import pytest

from helpers import BUILDDIR, TEST_PLUGINS, get, run

SYNC_SO = os.path.join(BUILDDIR, "plugins", "sync", ".libs", "sync.so")


def abi_minor():
    """NW_ABI_MINOR of the headers the tests were built with."""
    from helpers import SRCDIR
    with open(os.path.join(SRCDIR, "include", "narwhal",
                           "version.h")) as f:
        return int(re.search(r"#define NW_ABI_MINOR\s+(\d+)",
                             f.read()).group(1))


def refusal(path):
    code, out = run(["-b", "127.0.0.1:0", "-k", path, "hello:app"])
    assert code == 1, out
    lines = [l for l in out.splitlines() if path in l]
    assert len(lines) == 1, out  # one line names the file
    assert "Starting narwhal" not in out  # refused before anything started
    return lines[0]


def plugin(name):
    return os.path.join(TEST_PLUGINS, name + ".so")


def test_bad_magic():
    line = refusal(plugin("bad_magic"))
    assert "magic is 0xdeadbeef, expected 0x6e77776b" in line
    assert "rebuild it against narwhal's headers" in line


def test_other_abi_major():
    line = refusal(plugin("bad_major"))
    assert "abi_major is 2, this narwhal (0.1.0) has 1" in line
    assert "rebuild the plugin" in line


def test_newer_abi_minor():
    line = refusal(plugin("bad_minor"))
    assert ("abi_minor is %d, this narwhal (0.1.0) provides %d"
            % (abi_minor() + 1, abi_minor())) in line
    assert "upgrade narwhal" in line


def test_short_struct():
    line = refusal(plugin("short_struct"))
    assert re.search(r"size is \d+ bytes, this narwhal needs at least \d+",
                     line)
    assert "truncated" in line


def test_missing_entry_function():
    line = refusal(plugin("no_entry"))
    assert "no narwhal_worker_entry function" in line


def test_entry_returning_null():
    line = refusal(plugin("null_entry"))
    assert "narwhal_worker_entry returned NULL" in line


def test_other_python_version():
    line = refusal(plugin("other_python"))
    assert re.search(r"build fingerprint py_minor is (\d+), this narwhal's "
                     r"is (\d+) \(plugin built for Python 3\.\1, narwhal "
                     r"embeds Python 3\.\2\)", line)
    assert "rebuild the plugin" in line


def test_no_run_function():
    line = refusal(plugin("no_run"))
    assert "run is NULL" in line


def test_not_a_shared_object(tmp_path):
    fake = tmp_path / "fake.so"
    fake.write_text("this is not ELF\n")
    line = refusal(str(fake))
    assert "cannot be loaded" in line


def test_missing_path():
    line = refusal("/nonexistent/dir/x.so")
    assert "No such file or directory" in line


def test_init_failure_is_a_boot_failure():
    code, out = run(["-b", "127.0.0.1:0", "-k", plugin("init_fails"),
                     "hello:app"])
    assert code == 3, out
    assert "init refuses on purpose" in out
    assert "Reason: Worker failed to boot." in out


def test_relative_path(server, tmp_path):
    shutil.copy(SYNC_SO, tmp_path / "mine.so")
    s = server("-k", "./mine.so", "--chdir", str(tmp_path), cwd=str(tmp_path),
               app="hello:app", env={"PYTHONPATH": os.path.join(
                   os.path.dirname(__file__), "..", "apps")})
    assert get(s.port)[0] == 200


def test_plugin_path_setting(server, tmp_path):
    shutil.copy(SYNC_SO, tmp_path / "custom.so")
    s = server("--plugin-path", "/nonexistent:" + str(tmp_path), "-k",
               "custom")
    assert get(s.port)[0] == 200
    assert "Using worker: sync" in s.log()


def test_plugin_path_environment(server, tmp_path):
    shutil.copy(SYNC_SO, tmp_path / "fromenv.so")
    s = server("-k", "fromenv", env={"NARWHAL_PLUGIN_PATH": str(tmp_path)})
    assert get(s.port)[0] == 200


def test_plugin_path_comes_first(server, tmp_path):
    # a directory on --plugin-path shadows the built-in sync
    shutil.copy(os.path.join(TEST_PLUGINS, "bad_magic.so"),
                tmp_path / "sync.so")
    code, out = run(["-b", "127.0.0.1:0", "--plugin-path", str(tmp_path),
                     "-k", "sync", "hello:app"])
    assert code == 1
    assert str(tmp_path / "sync.so") in out
