/* The PROXY protocol header, v1 and v2, and its refusals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include <narwhal/api.h>

#include "http/proxy.h"

#define PARSE(buf, mode) \
    nw__proxy_parse(buf, sizeof(buf) - 1, mode, &info, &used, &why)

static void
test_v1(void **state)
{
    static const char tcp4[] = "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443"
                               "\r\nGET / HTTP/1.1\r\n";
    static const char tcp6[] = "PROXY TCP6 2001:db8::1 ::1 1 65535\r\n";
    nw_proxy_info info;
    size_t used = 0;
    const char *why = NULL;
    (void) state;

    assert_int_equal(PARSE(tcp4, NW_PROXY_V1), NW_OK);
    assert_int_equal(used, strlen("PROXY TCP4 192.0.2.1 198.51.100.2 "
                                  "56324 443\r\n"));
    assert_string_equal(info.protocol, "TCP4");
    assert_string_equal(info.src_addr, "192.0.2.1");
    assert_string_equal(info.dst_addr, "198.51.100.2");
    assert_int_equal(info.src_port, 56324);
    assert_int_equal(info.dst_port, 443);
    assert_true(info.has_addr);
    assert_int_equal(PARSE(tcp6, NW_PROXY_AUTO), NW_OK);
    assert_string_equal(info.protocol, "TCP6");
    assert_string_equal(info.src_addr, "2001:db8::1");
    assert_int_equal(info.dst_port, 65535);
    /* v1 is not looked for in v2 mode */
    assert_int_equal(PARSE(tcp4, NW_PROXY_V2), NW_PROXY_NONE);
    /* a prefix: more bytes needed */
    assert_int_equal(nw__proxy_parse("PRO", 3, NW_PROXY_V1, &info, &used,
                                     &why),
                     NW_AGAIN);
    assert_int_equal(nw__proxy_parse("PROXY TCP4 1.2", 14, NW_PROXY_V1,
                                     &info, &used, &why),
                     NW_AGAIN);
    assert_int_equal(nw__proxy_parse("POST / ", 7, NW_PROXY_V1, &info, &used,
                                     &why),
                     NW_PROXY_NONE);
}

static void
test_v1_refusals(void **state)
{
    static const char *const bad[] = {
        "PROXY UNKNOWN\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
        "PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",
        "PROXY TCP4 ::1 5.6.7.8 1 2\r\n",
        "PROXY TCP6 1.2.3.4 ::1 1 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2x\r\n",
        "PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
    };
    char longline[200];
    nw_proxy_info info;
    size_t used;
    const char *why;
    (void) state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why = NULL;
        if (nw__proxy_parse(bad[i], strlen(bad[i]), NW_PROXY_V1, &info,
                            &used, &why)
            != NW_ERROR) {
            fail_msg("accepted: %s", bad[i]);
        }
        assert_non_null(why);
    }
    memset(longline, '1', sizeof(longline));
    memcpy(longline, "PROXY TCP4 ", 11);
    assert_int_equal(nw__proxy_parse(longline, sizeof(longline), NW_PROXY_V1,
                                     &info, &used, &why),
                     NW_ERROR);
}

static void
test_v2(void **state)
{
    static const char tcp4[] = "\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c"
                               "\xc0\x00\x02\x07\xc6\x33\x64\x09\x30\x39"
                               "\x01\xbbGET";
    static const char tcp6_tlv[] =
        "\r\n\r\n\0\r\nQUIT\n\x21\x21\x00\x29"
        "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01"
        "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x01"
        "\x04\xd2\x00\x50"
        "\x04\x00\x02\xab\xcd"; /* a TLV, skipped */
    static const char local[] = "\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00";
    static const char unspec[] = "\r\n\r\n\0\r\nQUIT\n\x21\x00\x00\x00";
    static const char unix_fam[] = "\r\n\r\n\0\r\nQUIT\n\x21\x31\x00\x00";
    static const char dgram[] = "\r\n\r\n\0\r\nQUIT\n\x21\x12\x00\x0c"
                                "\0\0\0\0\0\0\0\0\0\0\0\0";
    static const char v1ver[] = "\r\n\r\n\0\r\nQUIT\n\x11\x11\x00\x00";
    static const char short_addr[] = "\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x04"
                                     "\0\0\0\0";
    nw_proxy_info info;
    size_t used = 0;
    const char *why = NULL;
    (void) state;

    assert_int_equal(PARSE(tcp4, NW_PROXY_V2), NW_OK);
    assert_int_equal(used, 28);
    assert_string_equal(info.protocol, "TCP4");
    assert_string_equal(info.src_addr, "192.0.2.7");
    assert_string_equal(info.dst_addr, "198.51.100.9");
    assert_int_equal(info.src_port, 12345);
    assert_int_equal(info.dst_port, 443);
    assert_int_equal(PARSE(tcp6_tlv, NW_PROXY_AUTO), NW_OK);
    assert_int_equal(used, 16 + 41);
    assert_string_equal(info.src_addr, "2001:db8::1");
    assert_string_equal(info.dst_addr, "::1");
    assert_int_equal(info.src_port, 1234);
    assert_int_equal(info.dst_port, 80);
    assert_int_equal(PARSE(local, NW_PROXY_V2), NW_OK);
    assert_string_equal(info.protocol, "LOCAL");
    assert_false(info.has_addr);
    assert_int_equal(PARSE(unspec, NW_PROXY_V2), NW_OK);
    assert_string_equal(info.protocol, "UNSPEC");
    assert_int_equal(PARSE(unix_fam, NW_PROXY_V2), NW_ERROR);
    assert_int_equal(PARSE(dgram, NW_PROXY_V2), NW_ERROR);
    assert_int_equal(PARSE(v1ver, NW_PROXY_V2), NW_ERROR);
    assert_int_equal(PARSE(short_addr, NW_PROXY_V2), NW_ERROR);
    /* not looked for in v1 mode, incomplete when short */
    assert_int_equal(PARSE(tcp4, NW_PROXY_V1), NW_PROXY_NONE);
    assert_int_equal(nw__proxy_parse(tcp4, 20, NW_PROXY_V2, &info, &used,
                                     &why),
                     NW_AGAIN);
    assert_int_equal(nw__proxy_parse(tcp4, 5, NW_PROXY_V2, &info, &used,
                                     &why),
                     NW_AGAIN);
}

static void
test_modes(void **state)
{
    (void) state;
    assert_int_equal(nw__proxy_mode("off"), NW_PROXY_OFF);
    assert_int_equal(nw__proxy_mode(NULL), NW_PROXY_OFF);
    assert_int_equal(nw__proxy_mode("v1"), NW_PROXY_V1);
    assert_int_equal(nw__proxy_mode("v2"), NW_PROXY_V2);
    assert_int_equal(nw__proxy_mode("auto"), NW_PROXY_AUTO);
    assert_int_equal(nw__proxy_mode("v3"), -1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v1),
        cmocka_unit_test(test_v1_refusals),
        cmocka_unit_test(test_v2),
        cmocka_unit_test(test_modes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
