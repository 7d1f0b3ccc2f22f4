/* The response head: status and header validation, framing, errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "http/response.h"

static void
test_status(void **state)
{
    nw_resp r;
    char err[256];
    (void) state;

    nw__resp_init(&r);
    assert_int_equal(nw__resp_set_status(&r, "200 OK", 6, err, sizeof(err)),
                     0);
    assert_int_equal(r.status, 200);
    assert_int_equal(nw__resp_set_status(&r, "404", 3, err, sizeof(err)), 0);
    assert_int_equal(r.status, 404);
    assert_int_equal(nw__resp_set_status(&r, "OK", 2, err, sizeof(err)), -1);
    assert_int_equal(nw__resp_set_status(&r, "2000 OK", 7, err, sizeof(err)),
                     -1);
    assert_int_equal(
        nw__resp_set_status(&r, "200 OK\r\nX: y", 12, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "control character"));
    nw__resp_free(&r);
}

static void
test_headers(void **state)
{
    nw_resp r;
    char err[256];
    (void) state;

    nw__resp_init(&r);
    assert_int_equal(nw__resp_add_header(&r, "Content-Type", 12,
                                         " text/plain ", 12, err,
                                         sizeof(err)),
                     0);
    assert_int_equal(nw__resp_add_header(&r, "X-Bad", 5, "a\r\nSet-Cookie: x",
                                         17, err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "control byte 0x0d"));
    assert_int_equal(nw__resp_add_header(&r, "X-Nul", 5, "a\0b", 3, err,
                                         sizeof(err)),
                     -1);
    assert_int_equal(nw__resp_add_header(&r, "Bad Name", 8, "v", 1, err,
                                         sizeof(err)),
                     -1);
    assert_int_equal(nw__resp_add_header(&r, "Bad\nName", 8, "v", 1, err,
                                         sizeof(err)),
                     -1);
    /* hop-by-hop and server-owned headers are dropped */
    assert_int_equal(nw__resp_add_header(&r, "Connection", 10, "keep-alive",
                                         10, err, sizeof(err)),
                     0);
    assert_int_equal(nw__resp_add_header(&r, "Transfer-Encoding", 17,
                                         "chunked", 7, err, sizeof(err)),
                     0);
    assert_int_equal(nw__resp_add_header(&r, "Server", 6, "x", 1, err,
                                         sizeof(err)),
                     0);
    assert_int_equal(nw__resp_add_header(&r, "Content-Length", 14, "12", 2,
                                         err, sizeof(err)),
                     0);
    assert_int_equal(r.content_length, 12);
    assert_int_equal(nw__resp_add_header(&r, "Content-Length", 14, "1x", 2,
                                         err, sizeof(err)),
                     -1);
    assert_int_equal(r.headers_len,
                     strlen("Content-Type: text/plain\r\n"
                            "Content-Length: 12\r\n"));
    assert_memory_equal(r.headers,
                        "Content-Type: text/plain\r\nContent-Length: 12\r\n",
                        r.headers_len);
    nw__resp_free(&r);
}

/* The names the server owns are matched in any case, and only those: a
   name one byte off is an ordinary header. */
static void
test_special_names_in_any_case(void **state)
{
    static const struct {
        const char *name, *value;
        int kept, upgrade;
        long long length;
    } cases[] = {
        {"CONTENT-LENGTH", "7", 1, 0, 7},
        {"content-length", "8", 1, 0, 8},
        {"Content_Length", "9", 1, 0, -1},
        {"Content-Lengt^", "9", 1, 0, -1},
        {"KEEP-ALIVE", "timeout=5", 0, 0, -1},
        {"Keep_Alive", "x", 1, 0, -1},
        {"tE", "trailers", 0, 0, -1},
        {"TRANSFER-encoding", "chunked", 0, 0, -1},
        {"PROXY-AUTHORIZATION", "x", 0, 0, -1},
        {"Proxy-Authenticate", "x", 0, 0, -1},
        {"trailers", "x", 0, 0, -1},
        {"DATE", "x", 0, 0, -1},
        {"sErVeR", "x", 0, 0, -1},
        {"Servers", "x", 1, 0, -1},
        {"cOnNeCtIoN", "UpGrAdE", 0, 1, -1},
        {"Connection", "upgrade ", 0, 1, -1},
        {"Connection", "upgradeX", 0, 0, -1},
        {"UPGRADE", "WebSocket", 1, 0, -1},
        {"Upgrade", "h2c", 0, 0, -1},
    };
    char err[256];
    (void) state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        nw_resp r;
        nw__resp_init(&r);
        assert_int_equal(nw__resp_add_header(&r, cases[i].name,
                                             strlen(cases[i].name),
                                             cases[i].value,
                                             strlen(cases[i].value), err,
                                             sizeof(err)),
                         0);
        if ((r.headers_len > 0) != cases[i].kept
            || (int) r.upgrade != cases[i].upgrade
            || r.content_length != cases[i].length) {
            fail_msg("%s: %s: kept %d upgrade %d length %lld", cases[i].name,
                     cases[i].value, r.headers_len > 0, (int) r.upgrade,
                     (long long) r.content_length);
        }
        nw__resp_free(&r);
    }
}

static void
test_framing_and_head(void **state)
{
    nw_resp r;
    char err[256], head[1024];
    size_t n;
    (void) state;

    nw__resp_init(&r);
    nw__resp_set_status(&r, "200 OK", 6, err, sizeof(err));
    nw__resp_frame(&r, 1, 0, 0);
    assert_true(r.chunked);
    assert_true(r.must_close);
    n = nw__resp_head(&r, 1, 1, head, sizeof(head));
    head[n] = '\0';
    assert_non_null(strstr(head, "HTTP/1.1 200 OK\r\nServer: narwhal\r\n"
                                 "Date: "));
    assert_non_null(strstr(head, " GMT\r\nConnection: close\r\n"
                                 "Transfer-Encoding: chunked\r\n\r\n"));

    nw__resp_frame(&r, 0, 0, 0); /* HTTP/1.0: no chunking */
    assert_false(r.chunked);
    nw__resp_set_status(&r, "204 No Content", 14, err, sizeof(err));
    nw__resp_frame(&r, 1, 0, 0);
    assert_true(r.no_body);
    assert_false(r.chunked);
    nw__resp_set_status(&r, "200 OK", 6, err, sizeof(err));
    nw__resp_frame(&r, 1, 1, 0); /* HEAD */
    assert_true(r.no_body);
    nw__resp_add_header(&r, "Content-Length", 14, "3", 1, err, sizeof(err));
    nw__resp_frame(&r, 1, 0, 0);
    assert_false(r.chunked);
    /* a head that does not fit reports the size it needs */
    assert_true(nw__resp_head(&r, 1, 1, head, 10) > 10);
    nw__resp_free(&r);
}

static void
test_chunk_header(void **state)
{
    char buf[20];
    (void) state;
    assert_int_equal(nw__resp_chunk_header(255, buf), 4);
    assert_memory_equal(buf, "ff\r\n", 4);
    assert_int_equal(nw__resp_chunk_header(1, buf), 3);
    assert_memory_equal(buf, "1\r\n", 3);
    assert_int_equal(nw__resp_chunk_header(0x10000, buf), 7);
    assert_memory_equal(buf, "10000\r\n", 7);
}

static void
test_error_response(void **state)
{
    char out[1024];
    size_t n;
    (void) state;

    n = nw__resp_error(400, "bad <thing>", out, sizeof(out));
    assert_int_equal(n, strlen(out));
    assert_non_null(strstr(out, "HTTP/1.1 400 Bad Request\r\n"
                                "Connection: close\r\n"
                                "Content-Type: text/html\r\n"));
    assert_non_null(strstr(out, "bad &lt;thing&gt;"));
    assert_null(strstr(out, "<thing>"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status),
        cmocka_unit_test(test_headers),
        cmocka_unit_test(test_special_names_in_any_case),
        cmocka_unit_test(test_framing_and_head),
        cmocka_unit_test(test_chunk_header),
        cmocka_unit_test(test_error_response),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
