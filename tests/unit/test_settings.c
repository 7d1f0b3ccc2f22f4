/* The settings table, typed setters and the generated command line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cli.h"
#include "settings.h"

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
    assert_null(s.chdir);
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
                                     NW_SRC_CLI, err, sizeof(err)),
                     0);
    assert_int_equal(s.workers, 4);
    assert_int_equal(nw__setting_set(&s, nw__setting_find("workers"), "four",
                                     NW_SRC_CLI, err, sizeof(err)),
                     -1);
    assert_string_equal(err, "invalid int value: 'four'");
    assert_int_equal(nw__setting_set(&s, nw__setting_find("workers"), "-1",
                                     NW_SRC_CLI, err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "out of range"));
    assert_int_equal(s.workers, 4);
    assert_int_equal(nw__setting_set(&s, nw__setting_find("loglevel"),
                                     "verbose", NW_SRC_CLI, err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "choose from debug, info"));
    assert_int_equal(nw__setting_set(&s, nw__setting_find("loglevel"),
                                     "debug", NW_SRC_CLI, err, sizeof(err)),
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
    nw__setting_set(&s, bind, "unix:/a", NW_SRC_CLI, err, sizeof(err));
    nw__setting_set(&s, bind, "[::1]:9", NW_SRC_CLI, err, sizeof(err));
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
                                     err, sizeof(err)),
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
                                     "X-Scheme = https", NW_SRC_CLI, err,
                                     sizeof(err)),
                     0);
    assert_int_equal(s.secure_scheme_headers.count, 1);
    assert_string_equal(s.secure_scheme_headers.keys[0], "X-Scheme");
    assert_string_equal(s.secure_scheme_headers.values[0], "https");
    assert_int_equal(nw__setting_set(&s,
                                     nw__setting_find("secure_scheme_headers"),
                                     "X-Scheme", NW_SRC_CLI, err, sizeof(err)),
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
    enum nw_cli_result r = nw__cli_parse(s, argc, argv, o, e);
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
