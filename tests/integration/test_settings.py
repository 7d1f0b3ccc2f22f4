"""Settings from every source, read back through --print-config (issue 4).

The table comes from the binary itself (--dump-settings=json), so a new
row is covered by these tests as soon as it is added; a row whose values
need a special sample (an existing directory, a user name, ...) gets one in
SPECIAL below, and the test fails until it has one if the generic sample
cannot be right."""
import functools
import json
import multiprocessing
import os
import pwd
import grp
import shlex
import subprocess
import textwrap

import pytest

from helpers import APPS, BINARY, SRCDIR, WRAPPER, Server, get, wait_for

# the environment Gunicorn reads defaults from: cleared for every run
DEFAULT_ENV = ("PORT", "WEB_CONCURRENCY", "FORWARDED_ALLOW_IPS", "SENDFILE",
               "GUNICORN_CMD_ARGS", "NARWHAL_CMD_ARGS")
CONTROLS = ("config", "check_config", "print_config")


def nw(args, cwd=APPS, env=None, timeout=30):
    """Run narwhal to its end: (exit code, stdout, stderr)."""
    full_env = {k: v for k, v in os.environ.items() if k not in DEFAULT_ENV}
    full_env.update(env or {})
    p = subprocess.run(WRAPPER + [BINARY] + list(args), cwd=str(cwd),
                       env=full_env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    return (p.returncode, p.stdout.decode("utf-8", "replace"),
            p.stderr.decode("utf-8", "replace"))


def parse_printed(out):
    values = {}
    for line in out.splitlines():
        name, sep, value = line.partition(" = ")
        assert sep, line
        values[name.rstrip()] = value
    return values


def print_config(args, cwd=APPS, env=None):
    code, out, err = nw(list(args) + ["--print-config"], cwd=cwd, env=env)
    assert code == 0, err
    return parse_printed(out), err


@functools.lru_cache()
def table():
    code, out, err = nw(["--dump-settings=json"])
    assert code == 0, err
    return json.loads(out)


def row(name):
    return next(r for r in table() if r["name"] == name)


class Sample:
    """One value for one row, as each source spells it, and how
    --print-config shows it."""

    def __init__(self, expected, cli=None, ini=None, py=None):
        self.expected = expected
        self.cli = cli      # argv words, or None: no flag can say it
        self.ini = ini      # text after "name = ", or None
        self.py = py        # Python source of the value, or None


def pyrepr_list(items):
    return repr(list(items))


@functools.lru_cache()
def special(tmp):
    """Rows whose value must mean something (tmp: a scratch directory)."""
    me = pwd.getpwuid(os.geteuid()).pw_name
    my_group = grp.getgrgid(os.getegid()).gr_name
    extra = [os.path.join(APPS, "hello.py"), os.path.join(APPS, "echo.py")]
    return {
        # the app must stay importable from the changed directory
        "chdir": Sample(os.path.realpath(tmp), ["--chdir", tmp], tmp,
                        repr(tmp)),
        "pythonpath": Sample(APPS, ["--pythonpath", APPS], APPS, repr(APPS)),
        "wsgi_app": Sample("hello:app", None, "hello:app", "'hello:app'"),
        "worker_class": Sample(
            "gunicorn.workers.sync.SyncWorker",
            ["-k", "gunicorn.workers.sync.SyncWorker"],
            "gunicorn.workers.sync.SyncWorker",
            "'gunicorn.workers.sync.SyncWorker'"),
        "bind": Sample("['127.0.0.1:9001', 'unix:/tmp/nw.sock']",
                       ["-b", "127.0.0.1:9001", "-b", "unix:/tmp/nw.sock"],
                       "127.0.0.1:9001, unix:/tmp/nw.sock",
                       "['127.0.0.1:9001', 'unix:/tmp/nw.sock']"),
        "raw_env": Sample("['A=1', 'B=x y']", ["-e", "A=1", "-e", "B=x y"],
                          "A=1, B=x y", "['A=1', 'B=x y']"),
        "reload_extra_files": Sample(
            pyrepr_list(extra),
            ["--reload-extra-file", extra[0], "--reload-extra-file",
             extra[1]],
            ", ".join(extra), repr(extra)),
        "hook_plugins": Sample("['one', 'two']",
                               ["--hook-plugin", "one", "--hook-plugin",
                                "two"],
                               "one two", "['one', 'two']"),
        "forwarded_allow_ips": Sample(
            "['10.0.0.1', '10.0.0.0/8']",
            ["--forwarded-allow-ips", "10.0.0.1,10.0.0.0/8"],
            "10.0.0.1 10.0.0.0/8", "['10.0.0.1', '10.0.0.0/8']"),
        "proxy_allow_ips": Sample("['192.168.0.0/16']",
                                  ["--proxy-allow-from", "192.168.0.0/16"],
                                  "192.168.0.0/16", "'192.168.0.0/16'"),
        "forwarder_headers": Sample("['X_A', 'X_B']",
                                    ["--forwarder-headers", "X_A,X_B"],
                                    "X_A,X_B", "'X_A,X_B'"),
        "secure_scheme_headers": Sample(
            "{'X-SCHEME': 'https', 'X-SSL': 'on'}",
            ["--secure-scheme-headers", "X-SCHEME=https,X-SSL=on"],
            "X-SCHEME=https, X-SSL=on", "{'X-SCHEME': 'https', 'X-SSL': 'on'}"),
        "user": Sample(str(os.geteuid()), ["-u", me], me, repr(me)),
        "group": Sample(str(os.getegid()), ["-g", my_group], my_group,
                        str(os.getegid())),
        "umask": Sample("18", ["-m", "0022"], "0o22", "0o22"),
        "statsd_host": Sample("localhost:9125",
                              ["--statsd-host", "localhost:9125"],
                              "localhost:9125", "'localhost:9125'"),
        "syslog_addr": Sample("udp://localhost:5140",
                              ["--log-syslog-to", "udp://localhost:5140"],
                              "udp://localhost:5140",
                              "'udp://localhost:5140'"),
        "proxy_protocol": Sample("v2", ["--proxy-protocol", "v2"], "v2",
                                 "'v2'"),
        "sendfile": Sample("False", ["--no-sendfile"], "false", "False"),
        "logconfig_dict": Sample("{'version': 1}", None, None,
                                 "{'version': 1}"),
        "worker_tmp_dir": Sample("/tmp", ["--worker-tmp-dir", "/tmp"],
                                 "/tmp", "'/tmp'"),
        "suppress_ragged_eofs": Sample("False", None, "false", "False"),
        "cert_reqs": Sample("2", ["--cert-reqs", "2"], "2", "2"),
    }


def first_other(choices, default):
    return next(c for c in choices if c != default)


def sample(r, tmp):
    """A value for row r through every source that can say it."""
    name, typ, default = r["name"], r["type"], r["default"]
    flag = ("--" + r["long"][0]) if r["long"] else None
    if name in special(tmp):
        return special(tmp)[name]
    if "refused" in r["flags"]:
        # accepted only as its default, which a config may spell out
        if typ == "callable":
            return None
        if typ in ("list",) or default is None:
            return Sample("[]" if typ == "list" else "None", None,
                          "" if typ == "list" else None,
                          "[]" if typ == "list" else "None")
        if typ == "bool":
            return Sample(default.title(), None, default, default.title())
        expected = default
        if typ == "csv":
            expected = pyrepr_list(x.strip() for x in default.split(","))
        if "autobase" in r["flags"]:
            expected = str(int(default, 8))
        py = default
        if typ in ("choice", "string", "csv"):
            py = repr(default)
        elif "autobase" in r["flags"]:
            py = "0o" + default.lstrip("0")
        return Sample(expected, [flag, default], default, py)
    if typ in ("int", "duration"):
        v = r["min"] + 7 if r["max"] >= r["min"] + 7 else r["max"]
        if default is not None and str(v) == default:
            v -= 1
        return Sample(str(v), [flag, str(v)] if flag else None,
                      "%ds" % v if typ == "duration" else str(v), str(v))
    if typ == "bool":
        on = default != "true"
        cli = [flag] if flag and on == ("store_false" not in r["flags"]) \
            else None
        return Sample(str(on), cli, "yes" if on else "off", str(on))
    if typ == "string":
        v = "x-" + name
        return Sample(v, [flag, v] if flag else None, v, repr(v))
    if typ == "choice":
        v = first_other(r["choices"], default)
        return Sample(v, [flag, v] if flag else None, v, repr(v))
    if typ == "callable":
        return Sample("<%s()>" % name, None, "hookmod:" + name,
                      "hookmod_fn('%s')" % name)
    raise AssertionError("no sample for %s (%s): add one to special()"
                         % (name, typ))


def samples(tmp, source):
    out = {}
    for r in table():
        if r["name"] in CONTROLS:
            continue
        s = sample(r, str(tmp))
        if s is None or getattr(s, source) is None:
            continue
        out[r["name"]] = s
    return out


def check_all(printed, chosen):
    wrong = {n: (printed.get(n), s.expected) for n, s in chosen.items()
             if printed.get(n) != s.expected}
    assert not wrong, wrong


def cli_words(chosen):
    words = []
    for s in chosen.values():
        words += s.cli
    return words


# ---------------------------------------------------------------------
# every setting through every source


def test_table_covers_gunicorn():
    names = {r["name"] for r in table()}
    # Gunicorn's 119 settings (reference sections 1.1-1.11) plus
    # narwhal's own rows
    assert len([r for r in table() if "narwhal" not in r["flags"]]) == 119
    for odd in ("limit_request_field_size", "errorlog", "paste",
                "enable_stdio_inheritance", "proxy_protocol", "sendfile"):
        assert odd in names
    assert row("limit_request_field_size")["long"] == [
        "limit-request-field_size"]
    assert row("errorlog")["long"] == ["error-logfile", "log-file"]
    assert row("paste")["long"] == ["paste", "paster"]
    assert row("enable_stdio_inheritance")["short"] == "R"
    assert {"plugin_path", "hook_plugins", "limit_request_body",
            "max_worker_memory"} <= {
                r["name"] for r in table() if "narwhal" in r["flags"]}


def test_every_setting_from_the_command_line(tmp_path):
    chosen = samples(tmp_path, "cli")
    assert len(chosen) > 90
    printed, err = print_config(cli_words(chosen) + ["hello:app"])
    check_all(printed, chosen)


@pytest.mark.parametrize("var", ["GUNICORN_CMD_ARGS", "NARWHAL_CMD_ARGS"])
def test_every_setting_from_the_environment(tmp_path, var):
    chosen = samples(tmp_path, "cli")
    env = {var: " ".join(shlex.quote(w) for w in cli_words(chosen))}
    printed, err = print_config(["hello:app"], env=env)
    check_all(printed, chosen)


def python_config(chosen):
    lines = ["import hookmod", "",
             "def hookmod_fn(name):",
             "    return getattr(hookmod, name)", ""]
    for name, s in chosen.items():
        lines.append("%s = %s" % (name, s.py))
    return "\n".join(lines) + "\n"


def test_every_setting_from_a_python_file(tmp_path):
    chosen = samples(tmp_path, "py")
    assert "on_starting" in chosen and "logconfig_dict" in chosen
    conf = tmp_path / "conf.py"
    conf.write_text(python_config(chosen))
    printed, err = print_config(["-c", str(conf)])
    check_all(printed, chosen)
    assert printed["config"] == str(conf)


def test_every_setting_from_an_ini_file(tmp_path):
    chosen = samples(tmp_path, "ini")
    assert "on_starting" in chosen and "wsgi_app" in chosen
    conf = tmp_path / "narwhal.ini"
    conf.write_text("[narwhal]\n" + "".join(
        "%s = %s\n" % (n, s.ini) for n, s in chosen.items()))
    printed, err = print_config(["-c", str(conf)])
    check_all(printed, chosen)


def test_hook_strings_in_a_python_file(tmp_path):
    conf = tmp_path / "conf.py"
    conf.write_text("post_request = 'hookmod.post_request'\n"
                    "when_ready = 'hookmod:when_ready'\n")
    printed, _ = print_config(["-c", str(conf), "hello:app"])
    assert printed["post_request"] == "<post_request()>"
    assert printed["when_ready"] == "<when_ready()>"


def test_python_module_config(tmp_path):
    pkg = tmp_path / "settingspkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "prod.py").write_text("workers = 6\nwsgi_app = 'hello:app'\n")
    printed, _ = print_config(["-c", "python:settingspkg.prod",
                               "--pythonpath", APPS], cwd=tmp_path)
    assert printed["workers"] == "6"


# ---------------------------------------------------------------------
# precedence: defaults < config file < GUNICORN_CMD_ARGS <
# NARWHAL_CMD_ARGS < command line


def test_precedence_of_every_source(tmp_path):
    conf = tmp_path / "conf.py"
    conf.write_text("workers = 2\ntimeout = 12\nbind = ['127.0.0.1:1']\n"
                    "graceful_timeout = 5\nbacklog = 64\n")
    env = {"GUNICORN_CMD_ARGS": "-w 3 -t 13 --backlog 65",
           "NARWHAL_CMD_ARGS": "-w 4 -b 127.0.0.1:2 -b 127.0.0.1:3",
           "WEB_CONCURRENCY": "9"}
    printed, _ = print_config(["-c", str(conf), "-w", "5", "hello:app"],
                              env=env)
    assert printed["workers"] == "5"                      # command line
    assert printed["bind"] == "['127.0.0.1:2', '127.0.0.1:3']"  # NARWHAL_
    assert printed["timeout"] == "13"                     # GUNICORN_
    assert printed["backlog"] == "65"
    assert printed["graceful_timeout"] == "5"             # config file
    assert printed["keepalive"] == "2"                    # default
    # a list from a higher source replaces, never appends to, a lower one
    printed, _ = print_config(["-c", str(conf), "-b", "127.0.0.1:4",
                               "hello:app"])
    assert printed["bind"] == "['127.0.0.1:4']"


def test_environment_defaults_and_the_file_over_them(tmp_path):
    env = {"PORT": "5000", "WEB_CONCURRENCY": "7",
           "FORWARDED_ALLOW_IPS": "10.9.9.9", "SENDFILE": "0"}
    printed, _ = print_config(["hello:app"], env=env)
    assert printed["bind"] == "['0.0.0.0:5000']"
    assert printed["workers"] == "7"
    assert printed["forwarded_allow_ips"] == "['10.9.9.9']"
    assert printed["sendfile"] == "False"
    conf = tmp_path / "conf.py"
    conf.write_text("workers = 2\n")
    printed, _ = print_config(["-c", str(conf), "hello:app"], env=env)
    assert printed["workers"] == "2"


def test_config_file_named_in_the_environment(tmp_path):
    (tmp_path / "env.py").write_text("workers = 3\n")
    (tmp_path / "cli.py").write_text("workers = 4\n")
    (tmp_path / "gunicorn.conf.py").write_text("workers = 5\n")
    env = {"GUNICORN_CMD_ARGS": "-c env.py --pythonpath " + APPS}
    printed, _ = print_config(["hello:app"], cwd=tmp_path, env=env)
    assert printed["workers"] == "3"
    assert printed["config"] == "env.py"
    printed, _ = print_config(["-c", "cli.py", "hello:app"], cwd=tmp_path,
                              env=env)
    assert printed["workers"] == "4"


def test_default_config_files(tmp_path):
    (tmp_path / "gunicorn.conf.py").write_text("workers = 5\n")
    args = ["--pythonpath", APPS, "hello:app"]
    printed, _ = print_config(args, cwd=tmp_path)
    assert printed["workers"] == "5"
    assert printed["config"] == "./gunicorn.conf.py"
    (tmp_path / "narwhal.conf.py").write_text("workers = 6\n")
    printed, _ = print_config(args, cwd=tmp_path)
    assert printed["workers"] == "6"
    assert printed["config"] == "./narwhal.conf.py"


def test_wsgi_app_from_the_file_and_app_module_over_it(tmp_path):
    conf = tmp_path / "conf.py"
    conf.write_text("wsgi_app = 'hello:app'\n")
    printed, _ = print_config(["-c", str(conf)])
    assert printed["default_proc_name"] == "hello:app"
    printed, _ = print_config(["-c", str(conf), "echo"])
    assert printed["default_proc_name"] == "echo"
    code, _, err = nw(["-c", str(conf), "nosuchmodule:app",
                       "--check-config"])
    assert code == 1
    assert "nosuchmodule" in err


# ---------------------------------------------------------------------
# bad values: one line naming the setting, the value and the source


def error_lines(err):
    return [l for l in err.splitlines()
            if l.startswith(("Error:", "narwhal: error:"))]


BAD = [
    # type, setting, CLI words, Python value, INI value, expected reason
    ("int", "workers", ["-w", "many"], "'many'", "many",
     "invalid int value: 'many'"),
    ("bool", "daemon", None, "'maybe'", "maybe",
     "invalid boolean value: 'maybe'"),
    ("duration", "timeout", ["-t", "soon"], "'soon'", "soon",
     "invalid duration: 'soon'"),
    ("list", "raw_env", ["-e", "NOEQUALS"], "['NOEQUALS']", "NOEQUALS",
     "'NOEQUALS' is not KEY=VALUE"),
    ("address", "bind", ["-b", "127.0.0.1:http"], "'127.0.0.1:http'",
     "127.0.0.1:http", "'http' is not a valid port number"),
    ("choice", "loglevel", ["--log-level", "loud"], "'loud'", "loud",
     "invalid choice: 'loud' (choose from debug, info, warning, error, "
     "critical)"),
    ("path", "chdir", ["--chdir", "/no/such/dir"], "'/no/such/dir'",
     "/no/such/dir", "can't chdir to '/no/such/dir'"),
    ("refused", "paste", ["--paste", "prod.ini"], "'prod.ini'", "prod.ini",
     "'prod.ini' is not supported: narwhal does not read PasteDeploy"),
]


@pytest.mark.parametrize("typ,name,cli,py,ini,reason", BAD,
                         ids=[b[0] for b in BAD])
@pytest.mark.parametrize("source", ["command line", "GUNICORN_CMD_ARGS",
                                    "NARWHAL_CMD_ARGS", "python", "ini"])
def test_bad_value_names_setting_value_and_source(tmp_path, source, typ,
                                                  name, cli, py, ini,
                                                  reason):
    env = {}
    args = ["hello:app", "--check-config"]
    if source in ("command line", "GUNICORN_CMD_ARGS", "NARWHAL_CMD_ARGS"):
        if cli is None:
            pytest.skip("a boolean flag takes no value")
        if source == "command line":
            args = cli + args
        else:
            env[source] = " ".join(shlex.quote(w) for w in cli)
    elif source == "python":
        conf = tmp_path / "gunicorn.conf.py"
        conf.write_text("workers = 2\n%s = %s\n" % (name, py))
        args = ["-c", str(conf)] + args
    else:
        conf = tmp_path / "narwhal.ini"
        conf.write_text("[narwhal]\nworkers = 2\n%s = %s\n" % (name, ini))
        args = ["-c", str(conf)] + args
    code, out, err = nw(args, env=env)
    lines = error_lines(err)
    assert len(lines) == 1, err
    line = lines[0]
    assert reason in line
    if source == "command line":
        assert code == 2
        assert line.startswith("narwhal: error: argument ")
        assert cli[0] in line
    elif source.endswith("_CMD_ARGS"):
        assert code == 2
        assert line.startswith("narwhal: error: %s: argument " % source)
    elif source == "python":
        assert code == 1
        assert line.startswith("Error: %s: %s: " % (conf, name))
    else:
        assert code == 1
        assert line.startswith("Error: %s:3: %s: " % (conf, name))


def test_bad_python_values_of_other_types(tmp_path):
    conf = tmp_path / "conf.py"
    for source, reason in [
            ("secure_scheme_headers = 'X-A'", "'X-A' is a str; expected a "
                                              "dict"),
            ("bind = [8000]", "item 8000 is a int; expected a string"),
            ("workers = 2.5", "2.5 is a float; expected an int"),
            ("proc_name = 5", "5 is a int; expected a string"),
            ("def on_starting(server, extra): pass",
             "on_starting() takes 2 positional arguments; the hook is "
             "called with 1: on_starting(server)"),
            ("post_request = lambda worker: None",
             "<lambda>() takes 1 positional argument; the hook is called "
             "with 2 to 4"),
            ("when_ready = 'nosuchmod.fn'", "cannot load 'nosuchmod.fn': "
                                            "ModuleNotFoundError"),
            ("pre_fork = 42", "42 is not callable")]:
        conf.write_text(source + "\n")
        code, _, err = nw(["-c", str(conf), "hello:app"])
        assert code == 1, source
        lines = error_lines(err)
        assert len(lines) == 1 and reason in lines[0], (source, err)
        assert lines[0].startswith("Error: %s: " % conf)


def test_post_request_takes_two_to_four_arguments(tmp_path):
    conf = tmp_path / "conf.py"
    for params in ("w, r", "w, r, e", "w, r, e, resp"):
        conf.write_text("def post_request(%s): pass\n" % params)
        printed, _ = print_config(["-c", str(conf), "hello:app"])
        assert printed["post_request"] == "<post_request()>"
    # Gunicorn counts positional parameters, defaults or not
    conf.write_text("def on_exit(server, extra=None): pass\n")
    code, _, err = nw(["-c", str(conf), "hello:app"])
    assert code == 1 and "on_exit() takes 2 positional" in err


def test_bad_environment_default():
    code, _, err = nw(["hello:app"], env={"WEB_CONCURRENCY": "lots"})
    assert code == 1
    assert error_lines(err) == [
        "Error: environment variable WEB_CONCURRENCY (the default of "
        "workers): invalid int value: 'lots'"]


def test_unclosed_quote_in_environment_args():
    code, _, err = nw(["hello:app"], env={"NARWHAL_CMD_ARGS": "-n 'x"})
    assert code == 2
    assert "NARWHAL_CMD_ARGS: no closing quotation" in err


def test_missing_config_file(tmp_path):
    code, _, err = nw(["-c", str(tmp_path / "nope.py"), "hello:app"])
    assert code == 1
    assert error_lines(err) == [
        "Error: config file '%s' does not exist (-c/--config)"
        % (tmp_path / "nope.py")]


def test_python_config_that_raises(tmp_path):
    conf = tmp_path / "conf.py"
    conf.write_text("import os\nraise RuntimeError('no database')\n")
    code, _, err = nw(["-c", str(conf), "hello:app"])
    assert code == 1
    assert "Error: failed to read config file %s:" % conf in err
    assert "RuntimeError: no database" in err


# ---------------------------------------------------------------------
# Python config files: Gunicorn's semantics


def test_python_config_is_run_not_imported(tmp_path):
    conf = tmp_path / "my settings.conf"
    conf.write_text(textwrap.dedent("""\
        import os, sys
        workers = 2 if __name__ == '__config__' else 9
        proc_name = os.path.basename(__file__)
        raw_env = ['IN_MODULES=%s' % ('__config__' in sys.modules)]
        """))
    printed, err = print_config(["-c", str(conf), "hello:app"])
    assert printed["workers"] == "2"
    assert printed["proc_name"] == "my settings.conf"
    assert printed["raw_env"] == "['IN_MODULES=True']"
    # not a .py file: Gunicorn warns and runs it anyway
    assert "should have a .py extension" in err


def test_unknown_names_ignored_near_misses_warned(tmp_path):
    conf = tmp_path / "conf.py"
    conf.write_text("import multiprocessing\nwokers = 3\nlog_level = 'x'\n"
                    "my_helper = 1\nbind = '127.0.0.1:8123'\n")
    printed, err = print_config(["-c", str(conf), "hello:app"])
    assert printed["workers"] == "1"
    assert printed["bind"] == "['127.0.0.1:8123']"
    assert "'wokers' is not a setting and is ignored; did you mean " \
           "'workers'?" in err
    assert "did you mean 'loglevel'?" in err
    assert "my_helper" not in err and "multiprocessing" not in err


def test_real_world_gunicorn_conf_loads_unchanged(tmp_path):
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text(textwrap.dedent("""\
        # gunicorn.conf.py, as projects ship it
        import multiprocessing

        bind = "127.0.0.1:8000"
        workers = multiprocessing.cpu_count() * 2 + 1
        worker_class = "sync"
        errorlog = "-"
        accesslog = "-"
        proc_name = "myproject"
        daemon = False
        timeout = 120
        keepalive = 5
        loglevel = "info"
        """))
    code, out, err = nw(["--check-config", "--pythonpath", APPS,
                         "hello:app"], cwd=tmp_path)
    assert code == 0, err
    assert out == ""
    printed, err = print_config(["--pythonpath", APPS, "hello:app"],
                                cwd=tmp_path)
    assert printed["workers"] == str(multiprocessing.cpu_count() * 2 + 1)
    assert printed["bind"] == "['127.0.0.1:8000']"
    assert printed["worker_class"] == "sync"
    assert printed["errorlog"] == "-"
    assert printed["accesslog"] == "-"
    assert printed["proc_name"] == "myproject"
    assert printed["daemon"] == "False"
    assert printed["timeout"] == "120"
    # every setting of this file is wired now (accesslog, keepalive):
    # nothing to warn about (test_pending_setting_warns_once covers the
    # warning)
    assert "is not implemented" not in err, err
    assert "daemon" not in err  # False is the default: nothing to say


# ---------------------------------------------------------------------
# INI files


def test_ini_details(tmp_path):
    conf = tmp_path / "app.cfg"
    conf.write_text(textwrap.dedent("""\
        ; comments and other programs' sections are fine
        [other]
        workers = not-ours

        [gunicorn]
        bind = "127.0.0.1:9001"
        bind = 127.0.0.1:9002
        Worker-Class = sync
        forwarded_allow_ips = 10.0.0.1 10.0.0.2
        forwarded_allow_ips = 10.0.0.3
        daemon = off
        graceful_timeout = 15s
        post_request = hookmod:post_request
        """))
    printed, err = print_config(["-c", "file:" + str(conf), "hello:app"])
    assert printed["bind"] == "['127.0.0.1:9001', '127.0.0.1:9002']"
    assert printed["forwarded_allow_ips"] == (
        "['10.0.0.1', '10.0.0.2', '10.0.0.3']")
    assert printed["graceful_timeout"] == "15"
    assert printed["post_request"] == "<post_request()>"


@pytest.mark.parametrize("text,line,reason", [
    ("workers = 2\n", 1, "'workers' is outside a section"),
    ("[narwhal]\nworkers = 2\nwokers = 3\n", 3,
     "unknown setting 'wokers' (did you mean 'workers'?)"),
    ("[narwhal]\n\nthis is not an entry\n", 3, "syntax error"),
    ("[narwhal]\non_starting = hookmod:two_args\n", 2,
     "on_starting: two_args() takes 2 positional arguments; the hook is "
     "called with 1"),
    ("[narwhal]\nlogconfig_dict = {}\n", 2,
     "a dict can only be set in a Python config file"),
    ("[narwhal]\nforwarded_allow_ips = " + "10.0.0.1," * 30 + "\n", 2,
     "longer than 199 characters"),
])
def test_ini_errors_name_file_and_line(tmp_path, text, line, reason):
    conf = tmp_path / "bad.ini"
    conf.write_text(text)
    code, _, err = nw(["-c", str(conf), "hello:app"])
    assert code == 1
    lines = error_lines(err)
    assert len(lines) == 1, err
    assert lines[0].startswith("Error: %s:%d: " % (conf, line)), lines[0]
    assert reason in lines[0]


def test_ini_without_our_section(tmp_path):
    conf = tmp_path / "paste.ini"
    conf.write_text("[server:main]\nuse = egg:gunicorn#main\n")
    code, _, err = nw(["-c", str(conf), "hello:app"])
    assert code == 1
    assert "has no [narwhal] (or [gunicorn]) section" in err


# ---------------------------------------------------------------------
# refused, pending and no-effect settings


def test_refused_setting_is_an_error_with_the_reason(tmp_path):
    code, _, err = nw(["--http-protocols", "h2,h1", "hello:app"])
    assert code == 2
    assert "argument --http-protocols: 'h2,h1' is not supported: narwhal " \
           "speaks HTTP/1.0 and 1.1 only" in err
    conf = tmp_path / "conf.py"
    conf.write_text("paste = None\nspew = False\nhttp_protocols = 'h1'\n")
    printed, _ = print_config(["-c", str(conf), "hello:app"])
    assert printed["paste"] == "None"


def test_pending_setting_warns_once():
    pending = [r for r in table() if "pending" in r["flags"]
               and r["type"] == "bool" and r["long"]
               and r["default"] == "false"]
    assert pending, "no pending boolean left: pick another row"
    r = pending[0]
    code, out, err = nw(["--" + r["long"][0], "--check-config",
                         "hello:app"])
    assert code == 0
    assert err.count("%s (from command line) is not implemented in narwhal"
                     % r["name"]) == 1


def test_no_effect_setting_says_why():
    code, _, err = nw(["--worker-tmp-dir", "/dev/shm", "--check-config",
                       "hello:app"])
    assert code == 0
    assert "worker_tmp_dir (from command line) has no effect: narwhal keeps " \
           "worker heartbeats in shared memory" in err


# ---------------------------------------------------------------------
# --print-config and --check-config


def test_print_config_format():
    code, out, err = nw(["--print-config", "hello:app"])
    assert code == 0
    lines = out.splitlines()
    names = [l.split(" = ")[0].rstrip() for l in lines]
    assert names == sorted(names)
    assert len(names) == len(table())
    width = max(len(n) for n in names)
    assert all(l[width:width + 3] == " = " for l in lines)
    printed = parse_printed(out)
    assert printed["bind"] == "['127.0.0.1:8000']"
    assert printed["secure_scheme_headers"] == (
        "{'X-FORWARDED-PROTOCOL': 'ssl', 'X-FORWARDED-PROTO': 'https', "
        "'X-FORWARDED-SSL': 'on'}")
    assert printed["on_starting"] == "<OnStarting.on_starting()>"
    assert printed["proc_name"] == "None"
    assert printed["print_config"] == "True"


def test_print_config_checks_too():
    code, out, err = nw(["--print-config", "nosuchmodule:app"])
    assert code == 1
    assert "workers" in out
    assert "nosuchmodule" in err


def test_check_config():
    assert nw(["--check-config", "hello:app"])[0] == 0
    code, out, err = nw(["--check-config", "broken_import:app"])
    assert code == 1
    assert "Traceback" in err
    code, out, err = nw(["--check-config", "-k", "nosuch", "hello:app"])
    assert code == 1
    assert "worker class 'nosuch' not found" in err
    code, out, err = nw(["--check-config"])
    assert code == 1
    assert "No application module specified" in err


# ---------------------------------------------------------------------
# the arbiter's interpreter, shared with the workers


def test_workers_inherit_the_arbiters_interpreter(server, tmp_path):
    conf = tmp_path / "conf.py"
    conf.write_text("import os\nmarker = 'from-config'\n"
                    "arbiter_pid = os.getpid()\nworkers = 2\n")
    s = server("-c", str(conf), app="inherit:app", workers_ready=2)
    body = get(s.port)[2].decode()
    assert body == "from-config %d %d" % (s.pid, s.pid)
    # a replaced worker is forked from the same interpreter again
    victim = s.workers()[0]
    os.kill(victim, 9)
    wait_for(lambda: len(s.workers()) == 2 and victim not in s.workers(),
             what="a replacement worker")
    for _ in range(4):
        assert get(s.port)[2].decode() == body


def test_without_python_config_workers_start_their_own(server):
    s = server(app="inherit:app")
    body = get(s.port)[2].decode()
    assert body.startswith("- - ")


# ---------------------------------------------------------------------
# --help, --version and the generated docs


def test_help_is_grouped_by_section():
    code, out, _ = nw(["--help"])
    assert code == 0
    for section in ("Config File:", "Debugging:", "Logging:",
                    "Server Mechanics:", "Server Socket:",
                    "Worker Processes:"):
        assert "\n" + section + "\n" in out
    assert "--limit-request-field_size" in out
    assert "--error-logfile FILE, --log-file FILE" in out
    assert "--proxy-protocol [MODE]" in out
    assert "--paste" not in out  # refused flags are not offered


@pytest.mark.parametrize("fmt,path", [("markdown", "doc/settings.md"),
                                      ("man", "doc/narwhal.1")])
def test_committed_docs_are_not_stale(fmt, path):
    code, out, err = nw(["--dump-settings=" + fmt])
    assert code == 0
    with open(os.path.join(SRCDIR, path)) as f:
        committed = f.read()
    assert committed == out, (
        "%s is stale: run `make update-docs` and commit it" % path)


def test_limits_above_gunicorns_caps_are_accepted_and_clamped(server):
    # Gunicorn takes any value and clamps it to 8190 where it is used
    s = server("--limit-request-line", "100000",
               "--limit-request-fields", "100000")
    assert get(s.port, "/" + "a" * 7000)[0] == 200
    try:
        status = get(s.port, "/" + "a" * 9000)[0]
    except ConnectionResetError:
        status = "reset"  # refused before all of it was read
    assert status == "reset" or status >= 400
