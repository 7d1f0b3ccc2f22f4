/* APP_MODULE parsing: Gunicorn's MODULE[:EXPR] forms. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "config/appspec.h"

static void
parses(const char *spec, const char *module, const char *name, int is_call,
       const char *args)
{
    nw_appspec a;
    char err[256] = "";

    if (nw__appspec_parse(spec, &a, err, sizeof(err)) != 0) {
        fail_msg("'%s' refused: %s", spec, err);
    }
    assert_string_equal(a.module, module);
    assert_string_equal(a.name, name);
    assert_int_equal(a.is_call, is_call);
    assert_string_equal(a.args, args);
}

static void
refused(const char *spec, const char *needle)
{
    nw_appspec a;
    char err[256] = "";

    assert_int_equal(nw__appspec_parse(spec, &a, err, sizeof(err)), -1);
    if (strstr(err, needle) == NULL) {
        fail_msg("error for '%s' is '%s', expected it to mention '%s'", spec,
                 err, needle);
    }
}

static void
test_module_only(void **state)
{
    (void) state;
    parses("hello", "hello", "application", 0, "");
    parses("myproject.wsgi", "myproject.wsgi", "application", 0, "");
}

static void
test_module_variable(void **state)
{
    (void) state;
    parses("hello:app", "hello", "app", 0, "");
    parses("a.b.c:wsgi_app", "a.b.c", "wsgi_app", 0, "");
    parses(" hello : app ", "hello", "app", 0, "");
    parses("_priv:_app2", "_priv", "_app2", 0, "");
}

static void
test_factory_calls(void **state)
{
    (void) state;
    parses("factory:create_app()", "factory", "create_app", 1, "");
    parses("factory:create_app('prod', debug=False)", "factory",
           "create_app", 1, "'prod', debug=False");
    parses("m:make ( 1, [2, 3] )", "m", "make", 1, " 1, [2, 3] ");
}

static void
test_refusals(void **state)
{
    (void) state;
    refused(":app", "names no module");
    refused("", "names no module");
    refused("a..b:app", "not a Python module name");
    refused("a.:app", "not a Python module name");
    refused("1abc:app", "not a Python module name");
    refused("mod:", "attribute name or function call");
    refused("mod:1app", "attribute name or function call");
    refused("mod:app(", "attribute name or function call");
    refused("mod:a.b", "attribute name or function call");
    refused("mod:app()x", "attribute name or function call");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_module_only),
        cmocka_unit_test(test_module_variable),
        cmocka_unit_test(test_factory_calls),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
