/* forwarded_allow_ips / proxy_allow_ips: addresses, networks, '*'. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include <narwhal/api.h>

#include "base/iplist.h"

static int
match(const nw_iplist *l, const char *addr)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (strchr(addr, ':') != NULL) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *) &ss;
        s6->sin6_family = AF_INET6;
        assert_int_equal(inet_pton(AF_INET6, addr, &s6->sin6_addr), 1);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *) &ss;
        s4->sin_family = AF_INET;
        assert_int_equal(inet_pton(AF_INET, addr, &s4->sin_addr), 1);
    }
    return nw__iplist_match(l, (struct sockaddr *) &ss);
}

static void
test_addresses_and_networks(void **state)
{
    char *items[] = {"127.0.0.1", "::1", "10.0.0.0/8", "192.168.1.128/25",
                     "2001:db8::/32"};
    nw_iplist l;
    char err[256];
    (void) state;

    assert_int_equal(nw__iplist_parse(&l, items, 5, err, sizeof(err)), NW_OK);
    assert_true(match(&l, "127.0.0.1"));
    assert_false(match(&l, "127.0.0.2"));
    assert_true(match(&l, "::1"));
    assert_true(match(&l, "10.255.1.2"));
    assert_false(match(&l, "11.0.0.1"));
    assert_true(match(&l, "192.168.1.200"));
    assert_false(match(&l, "192.168.1.100"));
    assert_true(match(&l, "2001:db8:1::5"));
    assert_false(match(&l, "2001:db9::5"));
    /* an IPv4 peer on a dual-stack socket */
    assert_true(match(&l, "::ffff:10.1.2.3"));
    assert_false(match(&l, "::ffff:11.1.2.3"));
    nw__iplist_free(&l);
}

static void
test_star_and_empty(void **state)
{
    char *star[] = {"*"};
    nw_iplist l;
    char err[256];
    (void) state;

    assert_int_equal(nw__iplist_parse(&l, star, 1, err, sizeof(err)), NW_OK);
    assert_true(match(&l, "203.0.113.9"));
    assert_true(match(&l, "2001:db8::9"));
    nw__iplist_free(&l);
    assert_int_equal(nw__iplist_parse(&l, NULL, 0, err, sizeof(err)), NW_OK);
    assert_false(match(&l, "127.0.0.1"));
    nw__iplist_free(&l);
}

static void
test_refusals(void **state)
{
    char *host_bits[] = {"10.0.0.1/8"};
    char *bad[] = {"localhost"};
    char *bad_prefix[] = {"10.0.0.0/33"};
    char *empty_prefix[] = {"10.0.0.0/"};
    nw_iplist l;
    char err[256];
    (void) state;

    assert_int_equal(nw__iplist_parse(&l, host_bits, 1, err, sizeof(err)),
                     NW_ERROR);
    assert_non_null(strstr(err, "'10.0.0.1/8' has host bits set"));
    assert_int_equal(nw__iplist_parse(&l, bad, 1, err, sizeof(err)),
                     NW_ERROR);
    assert_non_null(strstr(err, "'localhost' is not an IP address"));
    assert_int_equal(nw__iplist_parse(&l, bad_prefix, 1, err, sizeof(err)),
                     NW_ERROR);
    assert_int_equal(nw__iplist_parse(&l, empty_prefix, 1, err, sizeof(err)),
                     NW_ERROR);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_addresses_and_networks),
        cmocka_unit_test(test_star_and_empty),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
