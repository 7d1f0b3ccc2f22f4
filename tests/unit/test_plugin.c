/* The worker-plugin descriptor checks, field by field. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "plugin/plugin.h"

static int
dummy_run(nw_worker *w)
{
    (void) w;
    return 0;
}

static nw_worker_class
good(void)
{
    nw_worker_class c = {
        NW_WORKER_CLASS_HEADER,
        .name = "good",
        .instance_size = sizeof(nw_worker),
        .run = dummy_run,
    };
    return c;
}

static void
refused_with(const nw_worker_class *c, const char *const needles[])
{
    char err[1024] = "";

    assert_int_equal(nw__worker_class_check(c, "/p/x.so", err, sizeof(err)),
                     -1);
    for (size_t i = 0; needles[i] != NULL; i++) {
        if (strstr(err, needles[i]) == NULL) {
            fail_msg("refusal '%s' lacks '%s'", err, needles[i]);
        }
    }
    /* one line: no newline inside */
    assert_null(strchr(err, '\n'));
}

static void
test_good_passes(void **state)
{
    nw_worker_class c = good();
    char err[256] = "";
    (void) state;
    assert_int_equal(nw__worker_class_check(&c, "/p/x.so", err, sizeof(err)),
                     0);
}

static void
test_bad_magic(void **state)
{
    nw_worker_class c = good();
    (void) state;
    c.magic = 0xdeadbeef;
    refused_with(&c, (const char *const[]){"/p/x.so", "magic", "0xdeadbeef",
                                           "0x6e77776b", "rebuild", NULL});
}

static void
test_other_major(void **state)
{
    nw_worker_class c = good();
    (void) state;
    c.abi_major = NW_ABI_MAJOR + 1;
    refused_with(&c, (const char *const[]){"abi_major is 2", "has 1",
                                           "rebuild", NULL});
}

static void
test_newer_minor(void **state)
{
    nw_worker_class c = good();
    char is[32], provides[32];
    (void) state;
    c.abi_minor = NW_ABI_MINOR + 3;
    snprintf(is, sizeof(is), "abi_minor is %d", NW_ABI_MINOR + 3);
    snprintf(provides, sizeof(provides), "provides %d", NW_ABI_MINOR);
    refused_with(&c, (const char *const[]){is, provides, "upgrade narwhal",
                                           NULL});
}

static void
test_short_struct(void **state)
{
    nw_worker_class c = good();
    (void) state;
    c.size = 24;
    refused_with(&c, (const char *const[]){"size is 24 bytes",
                                           "truncated", NULL});
}

static void
test_fingerprint_fields(void **state)
{
    nw_worker_class c = good();
    (void) state;

    c.build.py_minor = (uint16_t) (PY_MINOR_VERSION + 1);
    refused_with(&c, (const char *const[]){"py_minor", "Python 3.", "embeds",
                                           "rebuild", NULL});
    c = good();
    c.build.py_debug = 1 - c.build.py_debug;
    refused_with(&c, (const char *const[]){"py_debug", NULL});
    c = good();
    c.build.ptr_size = 4;
    refused_with(&c, (const char *const[]){"ptr_size is 4", NULL});
    c = good();
    c.build.ev_major = 3;
    refused_with(&c, (const char *const[]){"ev_major is 3", "libev", NULL});
    c = good();
    c.build.size = 8;
    refused_with(&c, (const char *const[]){"fingerprint size", NULL});
}

static void
test_required_fields(void **state)
{
    nw_worker_class c = good();
    (void) state;

    c.run = NULL;
    refused_with(&c, (const char *const[]){"run is NULL", NULL});
    c = good();
    c.name = "";
    refused_with(&c, (const char *const[]){"name is empty", NULL});
    c = good();
    c.instance_size = 8;
    refused_with(&c, (const char *const[]){"instance_size is 8", NULL});
}

static void
test_aliases(void **state)
{
    char err[256];
    (void) state;

    assert_string_equal(nw__worker_class_alias("sync", err, sizeof(err)),
                        "sync");
    assert_string_equal(nw__worker_class_alias("tornado", err, sizeof(err)),
                        "tornado-compat");
    assert_string_equal(
        nw__worker_class_alias("gunicorn.workers.sync.SyncWorker", err,
                               sizeof(err)),
        "sync");
    assert_string_equal(
        nw__worker_class_alias("gunicorn.workers.gthread.ThreadWorker", err,
                               sizeof(err)),
        "gthread");
    assert_null(nw__worker_class_alias("gevent", err, sizeof(err)));
    assert_non_null(strstr(err, "-k ev"));
    assert_null(nw__worker_class_alias("eventlet", err, sizeof(err)));
}

static void
test_not_found_lists_paths(void **state)
{
    nw_settings s;
    char path[512], err[2048] = "";
    (void) state;

    nw__settings_init(&s);
    s.plugin_path = strdup("/nonexistent/a:/nonexistent/b");
    assert_int_equal(nw__plugin_find("nosuch", &s, path, sizeof(path), err,
                                     sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "worker class 'nosuch' not found"));
    assert_non_null(strstr(err, "/nonexistent/a/nosuch.so"));
    assert_non_null(strstr(err, "/nonexistent/b/nosuch.so"));
    assert_non_null(strstr(err, "--plugin-path"));
    assert_int_equal(nw__plugin_find("../evil", &s, path, sizeof(path), err,
                                     sizeof(err)),
                     -1);
    nw__settings_free(&s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_passes),
        cmocka_unit_test(test_bad_magic),
        cmocka_unit_test(test_other_major),
        cmocka_unit_test(test_newer_minor),
        cmocka_unit_test(test_short_struct),
        cmocka_unit_test(test_fingerprint_fields),
        cmocka_unit_test(test_required_fields),
        cmocka_unit_test(test_aliases),
        cmocka_unit_test(test_not_found_lists_paths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
