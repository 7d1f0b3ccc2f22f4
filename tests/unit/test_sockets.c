/* Bind addresses as Gunicorn spells them, and opening a listener. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "os/sockets.h"

static nw_bind_addr
parse_ok(const char *spec)
{
    nw_bind_addr a;
    char err[256] = "";

    if (nw__bind_parse(spec, &a, err, sizeof(err)) != 0) {
        fail_msg("'%s' refused: %s", spec, err);
    }
    return a;
}

static void
tcp(const char *spec, const char *host, int port, int ipv6)
{
    nw_bind_addr a = parse_ok(spec);
    assert_int_equal(a.kind, NW_ADDR_TCP);
    assert_string_equal(a.host, host);
    assert_int_equal(a.port, port);
    assert_int_equal(a.ipv6, ipv6);
}

static void
refused(const char *spec, const char *needle)
{
    nw_bind_addr a;
    char err[256] = "";

    assert_int_equal(nw__bind_parse(spec, &a, err, sizeof(err)), -1);
    if (strstr(err, needle) == NULL) {
        fail_msg("error for '%s' is '%s', expected '%s' in it", spec, err,
                 needle);
    }
}

static void
test_tcp_forms(void **state)
{
    (void) state;
    tcp("127.0.0.1:8000", "127.0.0.1", 8000, 0);
    tcp("127.0.0.1", "127.0.0.1", 8000, 0);
    tcp("LocalHost:9000", "localhost", 9000, 0);
    tcp("tcp://0.0.0.0:80", "0.0.0.0", 80, 0);
    tcp("", "0.0.0.0", 8000, 0);
    tcp(":8001", "0.0.0.0", 8001, 0);
    tcp("127.0.0.1:0", "127.0.0.1", 0, 0);
}

static void
test_ipv6_forms(void **state)
{
    (void) state;
    tcp("[::1]:8080", "::1", 8080, 1);
    tcp("[::1]", "::1", 8000, 1);
    tcp("[::]:8000", "::", 8000, 1);
}

static void
test_unix_and_fd(void **state)
{
    nw_bind_addr a;
    (void) state;

    a = parse_ok("unix:/tmp/nw.sock");
    assert_int_equal(a.kind, NW_ADDR_UNIX);
    assert_string_equal(a.path, "/tmp/nw.sock");
    a = parse_ok("unix:///run/nw.sock");
    assert_string_equal(a.path, "/run/nw.sock");
    a = parse_ok("unix:relative.sock");
    assert_string_equal(a.path, "relative.sock");
    a = parse_ok("fd://3");
    assert_int_equal(a.kind, NW_ADDR_FD);
    assert_int_equal(a.fd, 3);
}

static void
test_refusals(void **state)
{
    (void) state;
    refused("127.0.0.1:http", "not a valid port number");
    refused("127.0.0.1:99999", "not a valid port number");
    refused("127.0.0.1:", "not a valid port number");
    refused("[::1", "lacks its ']'");
    refused("[::1]8000", "expected ':PORT'");
    refused("::1:8000", "in brackets");
    refused("[zz::q]:80", "not a valid IPv6 address");
    refused("unix:", "no socket path");
    refused("fd://three", "not a valid file descriptor");
}

static void
test_describe(void **state)
{
    char buf[128];
    nw_bind_addr a;
    (void) state;

    a = parse_ok("127.0.0.1:8000");
    nw__bind_describe(&a, buf, sizeof(buf));
    assert_string_equal(buf, "('127.0.0.1', 8000)");
    a = parse_ok("unix:/tmp/x.sock");
    nw__bind_describe(&a, buf, sizeof(buf));
    assert_string_equal(buf, "/tmp/x.sock");
}

static void
test_open_ephemeral(void **state)
{
    nw_bind_addr a = parse_ok("127.0.0.1:0");
    nw_listener l;
    char err[256] = "";
    (void) state;

    assert_int_equal(nw__listener_open(&a, 16, 1, 0, 0, &l, err, sizeof(err)),
                     0);
    assert_true(l.fd >= 0);
    assert_int_equal(l.family, AF_INET);
    assert_non_null(strstr(l.url, "http://127.0.0.1:"));
    assert_null(strstr(l.url, ":0"));
    nw__listener_close(&l, 1);
}

static void
test_address_in_use(void **state)
{
    nw_bind_addr a = parse_ok("127.0.0.1:0");
    nw_listener first, second;
    char err[256] = "";
    const char *colon;
    (void) state;

    assert_int_equal(
        nw__listener_open(&a, 16, 1, 0, 0, &first, err, sizeof(err)), 0);
    colon = strrchr(first.url, ':');
    a.port = atoi(colon + 1);
    assert_int_equal(
        nw__listener_open(&a, 16, 2, 1, 0, &second, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "Can't connect to ('127.0.0.1', "));
    assert_non_null(strstr(err, "address already in use"));
    nw__listener_close(&first, 1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tcp_forms),
        cmocka_unit_test(test_ipv6_forms),
        cmocka_unit_test(test_unix_and_fd),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_describe),
        cmocka_unit_test(test_open_ephemeral),
        cmocka_unit_test(test_address_in_use),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
