/* The settings table, typed setters and the generated command line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "plugin/api.h"
#include "config/cli.h"
#include "config/settings.h"
#include "config/settings_doc.h"

static void
test_defaults(void **state)
{
    nw_settings s;
    (void) state;

    nw__settings_init(&s);
    assert_int_equal(s.workers, 1);
    assert_int_equal(s.timeout, 30);
    assert_int_equal(s.graceful_timeout, 30);
    assert_int_equal(s.backlog, 2048);
    assert_string_equal(s.worker_class, "sync");
    assert_string_equal(s.loglevel, "info");
    assert_int_equal(s.bind.count, 1);
    assert_string_equal(s.bind.items[0], "127.0.0.1:8000");
    assert_int_equal(s.limit_request_line, 4094);
    assert_int_equal(s.limit_request_fields, 100);
    assert_int_equal(s.limit_request_field_size, 8190);
    assert_non_null(s.chdir);
    assert_int_equal(s.chdir[0], '/');
    nw__settings_free(&s);
}

static void
test_typed_set(void **state)
{
    nw_settings s;
    char err[256];
    (void) state;

    nw__settings_init(&s);
    assert_int_equal(nw__setting_set(&s, nw__setting_find("workers"), "4",
                                     NW_SRC_CLI, NULL, err, sizeof(err)),
                     0);
    assert_int_equal(s.workers, 4);
    assert_int_equal(nw__setting_set(&s, nw__setting_find("workers"), "four",
                                     NW_SRC_CLI, NULL, err, sizeof(err)),
                     -1);
    assert_string_equal(err, "invalid int value: 'four'");
    assert_int_equal(nw__setting_set(&s, nw__setting_find("workers"), "-1",
                                     NW_SRC_CLI, NULL, err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "out of range"));
    assert_int_equal(s.workers, 4);
    assert_int_equal(nw__setting_set(&s, nw__setting_find("loglevel"),
                                     "verbose", NW_SRC_CLI, NULL, err,
                                     sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "choose from debug, info"));
    assert_int_equal(nw__setting_set(&s, nw__setting_find("loglevel"),
                                     "debug", NW_SRC_CLI, NULL, err,
                                     sizeof(err)),
                     0);
    assert_string_equal(s.loglevel, "debug");
    nw__settings_free(&s);
}

static void
test_list_sources(void **state)
{
    nw_settings s;
    const nw_setting_def *bind = nw__setting_find("bind");
    char err[256];
    (void) state;

    nw__settings_init(&s);
    /* a higher source replaces the default; the same source appends */
    nw__setting_set(&s, bind, "unix:/a", NW_SRC_CLI, NULL, err, sizeof(err));
    nw__setting_set(&s, bind, "[::1]:9", NW_SRC_CLI, NULL, err, sizeof(err));
    assert_int_equal(s.bind.count, 2);
    assert_string_equal(s.bind.items[0], "unix:/a");
    assert_string_equal(s.bind.items[1], "[::1]:9");
    nw__settings_free(&s);
}

static void
test_csv_and_dict(void **state)
{
    nw_settings s;
    char err[256];
    (void) state;

    nw__settings_init(&s);
    assert_int_equal(s.forwarded_allow_ips.count, 2);
    assert_string_equal(s.forwarded_allow_ips.items[1], "::1");
    assert_int_equal(nw__setting_set(&s,
                                     nw__setting_find("forwarded_allow_ips"),
                                     " 10.0.0.1 ,, 10.0.0.0/8,*", NW_SRC_CLI,
                                     NULL, err, sizeof(err)),
                     0);
    assert_int_equal(s.forwarded_allow_ips.count, 3);
    assert_string_equal(s.forwarded_allow_ips.items[0], "10.0.0.1");
    assert_string_equal(s.forwarded_allow_ips.items[1], "10.0.0.0/8");
    assert_string_equal(s.forwarded_allow_ips.items[2], "*");

    assert_int_equal(s.secure_scheme_headers.count, 3);
    assert_string_equal(s.secure_scheme_headers.keys[1], "X-FORWARDED-PROTO");
    assert_string_equal(s.secure_scheme_headers.values[1], "https");
    assert_int_equal(nw__setting_set(&s,
                                     nw__setting_find("secure_scheme_headers"),
                                     "X-Scheme = https", NW_SRC_CLI, NULL,
                                     err, sizeof(err)),
                     0);
    assert_int_equal(s.secure_scheme_headers.count, 1);
    assert_string_equal(s.secure_scheme_headers.keys[0], "X-Scheme");
    assert_string_equal(s.secure_scheme_headers.values[0], "https");
    assert_int_equal(nw__setting_set(&s,
                                     nw__setting_find("secure_scheme_headers"),
                                     "X-Scheme", NW_SRC_CLI, NULL, err,
                                     sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "KEY=VALUE"));
    assert_int_equal(s.secure_scheme_headers.count, 1);
    nw__settings_free(&s);
}

static enum nw_cli_result
parse(nw_settings *s, char *out, size_t outlen, char *errout, size_t errlen,
      int argc, char **argv)
{
    FILE *o = fmemopen(out, outlen, "w");
    FILE *e = fmemopen(errout, errlen, "w");
    enum nw_cli_result r = nw__cli_parse(s, argc, argv, NW_SRC_CLI, NULL,
                                         o, e);
    fclose(o);
    fclose(e);
    return r;
}

static void
test_cli(void **state)
{
    nw_settings s;
    char out[16384] = "", err[2048] = "";
    char *argv[] = {"narwhal", "-w3", "--bind", "127.0.0.1:1",
                    "-b",      "unix:/tmp/s", "-k", "sync",
                    "--timeout=5", "hello:app", "--chdir", "/tmp", NULL};
    (void) state;

    nw__settings_init(&s);
    assert_int_equal(parse(&s, out, sizeof(out), err, sizeof(err), 12, argv),
                     NW_CLI_RUN);
    assert_int_equal(s.workers, 3);
    assert_int_equal(s.timeout, 5);
    assert_int_equal(s.bind.count, 2);
    assert_string_equal(s.bind.items[1], "unix:/tmp/s");
    assert_string_equal(s.app_module, "hello:app");
    assert_string_equal(s.chdir, "/tmp");
    nw__settings_free(&s);
}

static void
test_cli_no_flag(void **state)
{
    nw_settings s;
    char out[1024] = "", err[1024] = "";
    char *argv[] = {"narwhal", "--no-sendfile", "app", NULL};
    (void) state;

    nw__settings_init(&s);
    assert_int_equal(s.sendfile, 1);
    assert_int_equal(parse(&s, out, sizeof(out), err, sizeof(err), 3, argv),
                     NW_CLI_RUN);
    assert_int_equal(s.sendfile, 0);
    nw__settings_free(&s);
}

static void
test_cli_errors(void **state)
{
    nw_settings s;
    char out[16384] = "", err[2048] = "";
    char *bad_int[] = {"narwhal", "-w", "x", "app", NULL};
    char *unknown[] = {"narwhal", "--no-such-flag", "app", NULL};
    char *two_apps[] = {"narwhal", "a:app", "b:app", NULL};
    char *missing[] = {"narwhal", "app", "--workers", NULL};
    (void) state;

    nw__settings_init(&s);
    assert_int_equal(parse(&s, out, sizeof(out), err, sizeof(err), 4,
                           bad_int),
                     NW_CLI_USAGE);
    assert_non_null(strstr(err, "argument -w/--workers: invalid int value: "
                                "'x'"));
    assert_int_equal(parse(&s, out, sizeof(out), err, sizeof(err), 3,
                           unknown),
                     NW_CLI_USAGE);
    assert_non_null(strstr(err, "unrecognized arguments: --no-such-flag"));
    assert_int_equal(parse(&s, out, sizeof(out), err, sizeof(err), 3,
                           two_apps),
                     NW_CLI_USAGE);
    assert_int_equal(parse(&s, out, sizeof(out), err, sizeof(err), 3,
                           missing),
                     NW_CLI_USAGE);
    assert_non_null(strstr(err, "expected one argument"));
    nw__settings_free(&s);
}

static void
test_help_and_version(void **state)
{
    nw_settings s;
    char out[16384] = "", err[256] = "";
    char *help[] = {"narwhal", "--help", NULL};
    char *version[] = {"narwhal", "-v", NULL};
    (void) state;

    nw__settings_init(&s);
    assert_int_equal(parse(&s, out, sizeof(out), err, sizeof(err), 2, help),
                     NW_CLI_EXIT_OK);
    assert_non_null(strstr(out, "usage: narwhal"));
    assert_non_null(strstr(out, "Server Socket:"));
    assert_non_null(strstr(out, "-b ADDRESS, --bind ADDRESS"));
    assert_non_null(strstr(out, "--limit-request-field_size"));
    assert_int_equal(parse(&s, out, sizeof(out), err, sizeof(err), 2,
                           version),
                     NW_CLI_EXIT_OK);
    assert_string_equal(out, "narwhal (version 0.1.0)\n");
    nw__settings_free(&s);
}

/* set(name, value, src): the return code; err holds the reason */
static char last_err[512];

static int
set(nw_settings *s, const char *name, const char *value,
    enum nw_setting_source src)
{
    const nw_setting_def *d = nw__setting_find(name);
    assert_non_null(d);
    last_err[0] = '\0';
    return nw__setting_set(s, d, value, src, "test", last_err,
                           sizeof(last_err));
}

static char *
formatted(nw_settings *s, const char *name)
{
    static char buf[1024];
    FILE *f = fmemopen(buf, sizeof(buf), "w");
    nw__setting_format(s, nw__setting_find(name), f);
    fclose(f);
    return buf;
}

static void
test_every_default_parses(void **state)
{
    nw_settings s;
    (void) state;

    /* nw__settings_init aborts on a default its own row refuses */
    nw__settings_init(&s);
    for (size_t i = 0; i < NW_SETTING_COUNT; i++) {
        const nw_setting_def *d = &nw__setting_defs[i];
        assert_non_null(d->help);
        assert_true(nw__setting_is_default(&s, d));
        if (d->flags & (NW_F_REFUSED | NW_F_NOOP)) {
            assert_non_null(d->note);
        }
        if (d->type == NW_T_CHOICE) {
            assert_non_null(d->choices);
        }
        if (d->type == NW_T_CALLABLE) {
            assert_true(d->min >= 1 && d->max >= d->min);
            assert_non_null(d->default_value);
        }
    }
    assert_string_equal(s.secure_scheme_headers.keys[0],
                        "X-FORWARDED-PROTOCOL");
    nw__settings_free(&s);
}

static void
test_precedence(void **state)
{
    nw_settings s;
    (void) state;

    nw__settings_init(&s);
    /* read in Gunicorn's order of effect, highest first, as main does */
    assert_int_equal(set(&s, "workers", "5", NW_SRC_CLI), 0);
    assert_int_equal(set(&s, "workers", "4", NW_SRC_ENV), 0);
    assert_int_equal(set(&s, "workers", "3", NW_SRC_ENV_GUNICORN), 0);
    assert_int_equal(set(&s, "workers", "2", NW_SRC_FILE), 0);
    assert_int_equal(s.workers, 5);
    assert_string_equal(s.origin[NW_S_workers], "test");
    /* a lower source is still checked */
    assert_int_equal(set(&s, "workers", "two", NW_SRC_FILE), -1);
    assert_string_equal(last_err, "invalid int value: 'two'");
    assert_int_equal(s.workers, 5);

    assert_int_equal(set(&s, "timeout", "7", NW_SRC_FILE), 0);
    assert_int_equal(set(&s, "timeout", "9", NW_SRC_ENV_GUNICORN), 0);
    assert_int_equal(s.timeout, 9);
    assert_int_equal(s.source[NW_S_timeout], NW_SRC_ENV_GUNICORN);

    /* lists: the same source appends, a higher one replaces, a lower one
       is dropped */
    assert_int_equal(set(&s, "bind", "127.0.0.1:1", NW_SRC_FILE), 0);
    assert_int_equal(set(&s, "bind", "127.0.0.1:2", NW_SRC_FILE), 0);
    assert_int_equal(s.bind.count, 2);
    assert_int_equal(set(&s, "bind", "127.0.0.1:3", NW_SRC_CLI), 0);
    assert_int_equal(s.bind.count, 1);
    assert_string_equal(s.bind.items[0], "127.0.0.1:3");
    assert_int_equal(set(&s, "bind", "127.0.0.1:4", NW_SRC_ENV), 0);
    assert_int_equal(s.bind.count, 1);
    nw__settings_free(&s);
}

static void
test_types(void **state)
{
    nw_settings s;
    (void) state;

    nw__settings_init(&s);
    assert_int_equal(set(&s, "timeout", "45s", NW_SRC_CLI), 0);
    assert_int_equal(s.timeout, 45);
    assert_int_equal(set(&s, "graceful_timeout", "soon", NW_SRC_CLI), -1);
    assert_non_null(strstr(last_err, "invalid duration: 'soon'"));

    assert_int_equal(set(&s, "umask", "0022", NW_SRC_CLI), 0);
    assert_int_equal(s.umask, 18);
    assert_int_equal(set(&s, "umask", "0o27", NW_SRC_CLI), 0);
    assert_int_equal(s.umask, 23);
    assert_int_equal(set(&s, "umask", "0x12", NW_SRC_CLI), 0);
    assert_int_equal(s.umask, 18);
    assert_int_equal(set(&s, "umask", "9999", NW_SRC_CLI), -1);
    assert_non_null(strstr(last_err, "out of range"));

    assert_int_equal(set(&s, "daemon", "yes", NW_SRC_FILE), 0);
    assert_int_equal(s.daemon, 1);
    assert_int_equal(set(&s, "daemon", "Off", NW_SRC_FILE), 0);
    assert_int_equal(s.daemon, 0);
    assert_int_equal(set(&s, "daemon", "maybe", NW_SRC_FILE), -1);
    assert_non_null(strstr(last_err, "invalid boolean value: 'maybe'"));

    /* choices: case-insensitive where Gunicorn lower-cases, stored in the
       table's spelling */
    assert_int_equal(set(&s, "loglevel", "WARNING", NW_SRC_FILE), 0);
    assert_string_equal(s.loglevel, "warning");
    assert_int_equal(set(&s, "proxy_protocol", "true", NW_SRC_FILE), 0);
    assert_string_equal(s.proxy_protocol, "auto");
    assert_int_equal(set(&s, "proxy_protocol", "v3", NW_SRC_FILE), -1);

    assert_int_equal(set(&s, "user", "root", NW_SRC_FILE), 0);
    assert_int_equal(s.user, 0);
    assert_int_equal(set(&s, "user", "no-such-user-here", NW_SRC_FILE), -1);
    assert_string_equal(last_err, "no such user: 'no-such-user-here'");
    assert_int_equal(set(&s, "group", "0", NW_SRC_FILE), 0);

    assert_int_equal(set(&s, "bind", "127.0.0.1:99999", NW_SRC_FILE), -1);
    assert_non_null(strstr(last_err, "not a valid port"));
    assert_int_equal(set(&s, "chdir", "/no/such/dir", NW_SRC_FILE), -1);
    assert_non_null(strstr(last_err, "can't chdir to '/no/such/dir'"));
    assert_int_equal(set(&s, "chdir", "/tmp/../tmp", NW_SRC_FILE), 0);
    assert_string_equal(s.chdir, "/tmp");
    assert_int_equal(set(&s, "raw_env", "FOO", NW_SRC_FILE), -1);
    assert_int_equal(set(&s, "raw_env", "FOO=1=2", NW_SRC_FILE), 0);
    assert_int_equal(set(&s, "forwarded_allow_ips", "10.0.0.0/8, ::1/128",
                         NW_SRC_FILE),
                     0);
    assert_int_equal(set(&s, "forwarded_allow_ips", "10.0.0.0/33",
                         NW_SRC_FILE),
                     -1);
    assert_int_equal(set(&s, "forwarded_allow_ips", "proxy.local",
                         NW_SRC_FILE),
                     -1);
    assert_int_equal(set(&s, "statsd_host", "localhost:8125", NW_SRC_FILE),
                     0);
    assert_int_equal(set(&s, "statsd_host", "unix:///run/s", NW_SRC_FILE),
                     0);
    assert_int_equal(set(&s, "statsd_host", "a:b:c", NW_SRC_FILE), -1);
    assert_int_equal(set(&s, "syslog_addr", "udp://h:514", NW_SRC_FILE), 0);
    assert_int_equal(set(&s, "syslog_addr", "udp://h", NW_SRC_FILE), -1);
    assert_int_equal(set(&s, "syslog_addr", "unix:///dev/log#dgram",
                         NW_SRC_FILE),
                     0);
    assert_int_equal(set(&s, "wsgi_app", "pkg.mod:app", NW_SRC_FILE), 0);
    assert_int_equal(set(&s, "wsgi_app", "pkg mod", NW_SRC_FILE), -1);
    assert_int_equal(set(&s, "on_starting", "hooks:on_starting",
                         NW_SRC_FILE),
                     0);
    assert_string_equal(s.on_starting.spec, "hooks:on_starting");
    assert_int_equal(set(&s, "on_starting", "nodots", NW_SRC_FILE), -1);
    assert_non_null(strstr(last_err, "module:callable"));
    assert_int_equal(set(&s, "logconfig_dict", "{}", NW_SRC_FILE), -1);
    {
        /* plugins read durations as ints */
        long long v = 0;
        assert_int_equal(nw__api.config_int(&s, "timeout", &v), 0);
        assert_int_equal(v, 45);
    }
    nw__settings_free(&s);
}

static void
test_refused_and_pending(void **state)
{
    nw_settings s;
    (void) state;

    nw__settings_init(&s);
    assert_int_equal(set(&s, "paste", "app.ini", NW_SRC_CLI), -1);
    assert_non_null(strstr(last_err, "'app.ini' is not supported: narwhal "
                                     "does not read PasteDeploy"));
    /* the default value is accepted: a config file may spell it out */
    assert_int_equal(set(&s, "paste", NULL, NW_SRC_FILE), 0);
    assert_int_equal(set(&s, "http_protocols", "h1", NW_SRC_FILE), 0);
    assert_int_equal(set(&s, "http_protocols", "h1,h2", NW_SRC_FILE), -1);
    assert_int_equal(set(&s, "spew", "false", NW_SRC_FILE), 0);
    assert_int_equal(set(&s, "spew", "true", NW_SRC_FILE), -1);
    assert_int_equal(set(&s, "dirty_apps", "a:b", NW_SRC_FILE), -1);
    assert_int_equal(set(&s, "on_dirty_starting", "m:f", NW_SRC_FILE), -1);

    assert_true(nw__setting_is_default(&s, nw__setting_find("daemon")));
    assert_int_equal(set(&s, "daemon", "false", NW_SRC_FILE), 0);
    assert_true(nw__setting_is_default(&s, nw__setting_find("daemon")));
    assert_int_equal(set(&s, "daemon", "true", NW_SRC_FILE), 0);
    assert_false(nw__setting_is_default(&s, nw__setting_find("daemon")));
    nw__settings_free(&s);
}

static void
test_environment_defaults(void **state)
{
    nw_settings s;
    (void) state;

    setenv("PORT", "5000", 1);
    setenv("WEB_CONCURRENCY", "3", 1);
    setenv("FORWARDED_ALLOW_IPS", "10.1.1.1", 1);
    setenv("SENDFILE", "no", 1);
    nw__settings_init(&s);
    assert_string_equal(s.bind.items[0], "0.0.0.0:5000");
    assert_int_equal(s.workers, 3);
    assert_string_equal(s.forwarded_allow_ips.items[0], "10.1.1.1");
    assert_int_equal(s.sendfile, 0);
    assert_string_equal(s.env_error, "");
    assert_true(nw__setting_is_default(&s, nw__setting_find("workers")));
    nw__settings_free(&s);

    setenv("WEB_CONCURRENCY", "many", 1);
    nw__settings_init(&s);
    assert_int_equal(s.workers, 1);
    assert_non_null(strstr(s.env_error, "WEB_CONCURRENCY"));
    assert_non_null(strstr(s.env_error, "'many'"));
    nw__settings_free(&s);
    unsetenv("PORT");
    unsetenv("WEB_CONCURRENCY");
    unsetenv("FORWARDED_ALLOW_IPS");
    unsetenv("SENDFILE");
}

static void
test_format(void **state)
{
    nw_settings s;
    (void) state;

    nw__settings_init(&s);
    assert_string_equal(formatted(&s, "bind"), "['127.0.0.1:8000']");
    assert_string_equal(formatted(&s, "daemon"), "False");
    assert_string_equal(formatted(&s, "pidfile"), "None");
    assert_string_equal(formatted(&s, "on_starting"),
                        "<OnStarting.on_starting()>");
    assert_string_equal(formatted(&s, "logconfig_dict"), "{}");
    set(&s, "raw_env", "A=it's", NW_SRC_CLI);
    set(&s, "raw_env", "B=\\x", NW_SRC_CLI);
    assert_string_equal(formatted(&s, "raw_env"),
                        "[\"A=it's\", 'B=\\\\x']");
    nw__settings_free(&s);
}

static void
test_suggest(void **state)
{
    (void) state;

    assert_string_equal(nw__setting_suggest("wokers")->name, "workers");
    assert_string_equal(nw__setting_suggest("worker")->name, "workers");
    assert_string_equal(nw__setting_suggest("log_level")->name, "loglevel");
    assert_string_equal(nw__setting_suggest("Workers")->name, "workers");
    assert_string_equal(nw__setting_suggest("bnid")->name, "bind");
    assert_null(nw__setting_suggest("os"));
    assert_null(nw__setting_suggest("multiprocessing"));
    assert_null(nw__setting_suggest("cpu_count"));
    assert_int_equal(nw__edit_distance("abc", "acb"), 1);
}

static void
test_shlex(void **state)
{
    char err[128];
    char **argv;
    int argc;
    (void) state;

    assert_int_equal(nw__shlex_split("-w 3  --name 'my app' -e \"A=\\\"b\\\"\""
                                     " x\\ y ''",
                                     &argc, &argv, err, sizeof(err)),
                     0);
    assert_int_equal(argc, 9);
    assert_string_equal(argv[8], "");
    assert_string_equal(argv[0], "narwhal");
    assert_string_equal(argv[4], "my app");
    assert_string_equal(argv[6], "A=\"b\"");
    assert_string_equal(argv[7], "x y");
    assert_null(argv[argc]);
    nw__argv_free(argc, argv);
    assert_int_equal(nw__shlex_split("''", &argc, &argv, err, sizeof(err)),
                     0);
    assert_int_equal(argc, 2);
    assert_string_equal(argv[1], "");
    nw__argv_free(argc, argv);
    assert_int_equal(nw__shlex_split("-b 'oops", &argc, &argv, err,
                                     sizeof(err)),
                     -1);
    assert_string_equal(err, "no closing quotation");
}

static void
test_cli_odd_flags(void **state)
{
    nw_settings s;
    char out[1024] = "", err[1024] = "";
    char *bare[] = {"narwhal", "--proxy-protocol", "app:app", NULL};
    char *mode[] = {"narwhal", "--proxy-protocol", "v2", "app:app", NULL};
    char *eq[] = {"narwhal", "--proxy-protocol=v1", "--log-file", "/tmp/l",
                  "-R", "--limit-request-field_size", "10", "--paster",
                  "x.ini", NULL};
    char *typo[] = {"narwhal", "--wokers", "2", NULL};
    (void) state;

    nw__settings_init(&s);
    assert_int_equal(parse(&s, out, sizeof(out), err, sizeof(err), 3, bare),
                     NW_CLI_RUN);
    assert_string_equal(s.proxy_protocol, "auto");
    assert_string_equal(s.app_module, "app:app");
    nw__settings_free(&s);

    nw__settings_init(&s);
    assert_int_equal(parse(&s, out, sizeof(out), err, sizeof(err), 4, mode),
                     NW_CLI_RUN);
    assert_string_equal(s.proxy_protocol, "v2");
    assert_string_equal(s.app_module, "app:app");
    nw__settings_free(&s);

    nw__settings_init(&s);
    assert_int_equal(parse(&s, out, sizeof(out), err, sizeof(err), 9, eq),
                     NW_CLI_USAGE);
    assert_string_equal(s.proxy_protocol, "v1");
    assert_string_equal(s.errorlog, "/tmp/l");
    assert_int_equal(s.enable_stdio_inheritance, 1);
    assert_int_equal(s.limit_request_field_size, 10);
    assert_non_null(strstr(err, "argument --paste/--paster: 'x.ini' is not "
                                "supported"));
    nw__settings_free(&s);

    nw__settings_init(&s);
    assert_int_equal(parse(&s, out, sizeof(out), err, sizeof(err), 3, typo),
                     NW_CLI_USAGE);
    assert_non_null(strstr(err, "unrecognized arguments: --wokers (did you "
                                "mean --workers?)"));
    nw__settings_free(&s);
}

static void
test_env_label(void **state)
{
    nw_settings s;
    char out[1024] = "", err[1024] = "";
    char *bad[] = {"narwhal", "-w", "x", NULL};
    char *app[] = {"narwhal", "hello:app", NULL};
    FILE *o, *e;
    (void) state;

    nw__settings_init(&s);
    o = fmemopen(out, sizeof(out), "w");
    e = fmemopen(err, sizeof(err), "w");
    assert_int_equal(nw__cli_parse(&s, 3, bad, NW_SRC_ENV_GUNICORN,
                                   "GUNICORN_CMD_ARGS", o, e),
                     NW_CLI_USAGE);
    fclose(e);
    assert_non_null(strstr(err, "narwhal: error: GUNICORN_CMD_ARGS: "
                                "argument -w/--workers: invalid int value: "
                                "'x'"));
    e = fmemopen(err, sizeof(err), "w");
    assert_int_equal(nw__cli_parse(&s, 2, app, NW_SRC_ENV, "NARWHAL_CMD_ARGS",
                                   o, e),
                     NW_CLI_USAGE);
    fclose(e);
    fclose(o);
    assert_non_null(strstr(err, "NARWHAL_CMD_ARGS: 'hello:app': give "
                                "APP_MODULE on the command line"));
    nw__settings_free(&s);
}

static void
test_dump(void **state)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f;
    (void) state;

    f = open_memstream(&buf, &len);
    assert_int_equal(nw__settings_dump("json", f), 0);
    assert_int_equal(nw__settings_dump("markdown", f), 0);
    assert_int_equal(nw__settings_dump("man", f), 0);
    assert_int_equal(nw__settings_dump("html", f), -1);
    fclose(f);
    assert_non_null(strstr(buf, "\"name\": \"limit_request_field_size\""));
    assert_non_null(strstr(buf, "### `limit_request_field_size`"));
    assert_non_null(strstr(buf, "limit\\-request\\-field_size"));
    free(buf);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_typed_set),
        cmocka_unit_test(test_list_sources),
        cmocka_unit_test(test_csv_and_dict),
        cmocka_unit_test(test_cli),
        cmocka_unit_test(test_cli_no_flag),
        cmocka_unit_test(test_cli_errors),
        cmocka_unit_test(test_help_and_version),
        cmocka_unit_test(test_every_default_parses),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_types),
        cmocka_unit_test(test_refused_and_pending),
        cmocka_unit_test(test_environment_defaults),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_suggest),
        cmocka_unit_test(test_shlex),
        cmocka_unit_test(test_cli_odd_flags),
        cmocka_unit_test(test_env_label),
        cmocka_unit_test(test_dump),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
