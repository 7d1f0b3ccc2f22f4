/* The llhttp glue: spans into the buffer, body decoding, pipelining,
   limits and refusals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "http.h"

static const nw_http_limits limits = {4094, 100, 8190};

/* Append bytes as a read would. */
static void
feed(nw_http *h, const char *data, size_t n)
{
    while (n > 0) {
        size_t room = nw__http_room(h);
        size_t take = n < room ? n : room;
        assert_true(room > 0);
        memcpy(h->buf + h->len, data, take);
        h->len += take;
        data += take;
        n -= take;
    }
}

static enum nw_http_result
parse_all(nw_http *h, const char *req)
{
    feed(h, req, strlen(req));
    return nw__http_parse_head(h);
}

static int
span_is(const nw_http *h, nw_span s, const char *want)
{
    return s.len == strlen(want)
           && memcmp(nw__span_ptr(h, s), want, s.len) == 0;
}

static void
test_simple_get(void **state)
{
    nw_http h;
    (void) state;

    nw__http_init(&h, &limits);
    assert_int_equal(parse_all(&h, "GET /a/b?x=1 HTTP/1.1\r\nHost: ex\r\n"
                                   "User-Agent: t\r\n\r\n"),
                     NW_HTTP_HEAD_DONE);
    assert_true(span_is(&h, h.req.method, "GET"));
    assert_true(span_is(&h, h.req.url, "/a/b?x=1"));
    assert_int_equal(h.req.http_major, 1);
    assert_int_equal(h.req.http_minor, 1);
    assert_int_equal(h.req.nheaders, 2);
    assert_true(span_is(&h, h.req.headers[0].name, "Host"));
    assert_true(span_is(&h, h.req.headers[0].value, "ex"));
    assert_true(span_is(&h, h.req.headers[1].name, "User-Agent"));
    assert_int_equal(h.state, NW_HTTP_DONE);
    assert_int_equal(h.req.content_length, -1);
    nw__http_free(&h);
}

static void
test_byte_by_byte(void **state)
{
    static const char req[] = "POST /p HTTP/1.1\r\nHost: a\r\n"
                              "X-Long-Header-Name: some value\r\n"
                              "Content-Length: 5\r\n\r\nhello";
    nw_http h;
    enum nw_http_result r = NW_HTTP_NEED_MORE;
    char body[16];
    size_t got = 0;
    (void) state;

    nw__http_init(&h, &limits);
    for (size_t i = 0; i < sizeof(req) - 1 && r == NW_HTTP_NEED_MORE; i++) {
        feed(&h, req + i, 1);
        r = nw__http_parse_head(&h);
    }
    assert_int_equal(r, NW_HTTP_HEAD_DONE);
    assert_true(span_is(&h, h.req.headers[1].name, "X-Long-Header-Name"));
    assert_true(span_is(&h, h.req.headers[1].value, "some value"));
    assert_int_equal(h.req.content_length, 5);
    assert_int_equal(h.state, NW_HTTP_BODY);
    /* the body arrives byte by byte too */
    for (size_t i = sizeof(req) - 1 - 5; i < sizeof(req) - 1; i++) {
        feed(&h, req + i, 1);
        got += nw__http_decode_body(&h, body + got, sizeof(body) - got);
    }
    assert_int_equal(got, 5);
    assert_memory_equal(body, "hello", 5);
    assert_int_equal(h.state, NW_HTTP_DONE);
    nw__http_free(&h);
}

static void
test_chunked_body(void **state)
{
    nw_http h;
    char body[64];
    size_t got = 0;
    (void) state;

    nw__http_init(&h, &limits);
    assert_int_equal(parse_all(&h, "POST / HTTP/1.1\r\nHost: a\r\n"
                                   "Transfer-Encoding: chunked\r\n\r\n"
                                   "5\r\nhello\r\n6;ext=1\r\n world\r\n"
                                   "0\r\nTrailer: x\r\n\r\n"),
                     NW_HTTP_HEAD_DONE);
    assert_true(h.req.chunked);
    /* a small destination: decoding never overruns it */
    while (h.state == NW_HTTP_BODY) {
        size_t n = nw__http_decode_body(&h, body + got, 3);
        got += n;
        assert_true(got < sizeof(body));
    }
    assert_int_equal(h.state, NW_HTTP_DONE);
    assert_int_equal(got, 11);
    assert_memory_equal(body, "hello world", 11);
    /* the trailer did not become a header */
    assert_int_equal(h.req.nheaders, 2);
    nw__http_free(&h);
}

static void
test_pipelined(void **state)
{
    nw_http h;
    (void) state;

    nw__http_init(&h, &limits);
    assert_int_equal(parse_all(&h, "GET /one HTTP/1.1\r\nHost: a\r\n\r\n"
                                   "GET /two HTTP/1.1\r\nHost: b\r\n\r\n"),
                     NW_HTTP_HEAD_DONE);
    assert_true(span_is(&h, h.req.url, "/one"));
    nw__http_reset(&h);
    assert_int_equal(nw__http_parse_head(&h), NW_HTTP_HEAD_DONE);
    assert_true(span_is(&h, h.req.url, "/two"));
    assert_true(span_is(&h, h.req.headers[0].value, "b"));
    nw__http_free(&h);
}

static void
refused(const char *req, int status)
{
    nw_http h;

    nw__http_init(&h, &limits);
    if (parse_all(&h, req) != NW_HTTP_FAILED) {
        fail_msg("accepted: %s", req);
    }
    if (h.error_status != status) {
        fail_msg("status %d, expected %d for: %s (%s)", h.error_status,
                 status, req, h.error_reason);
    }
    nw__http_free(&h);
}

static void
test_refusals(void **state)
{
    (void) state;
    refused("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
            "Transfer-Encoding: chunked\r\n\r\n",
            400);
    refused("GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n"
            "\r\n",
            400);
    refused("GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400);
    refused("GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400);
    refused("GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", 400);
    refused("GET / HTTP/9.9\r\n\r\n", 400);
    refused("G@T / HTTP/1.1\r\n\r\n", 400);
    refused("GET / HTTP/1.1\r\nExpect: 200-ok\r\n\r\n", 417);
}

static void
test_limits(void **state)
{
    char big[9000];
    nw_http h;
    (void) state;

    memset(big, 'a', sizeof(big));
    memcpy(big, "GET /", 5);
    memcpy(big + 5000, " HTTP/1.1\r\n\r\n", 14);
    big[5014] = '\0';
    refused(big, 414);

    nw__http_init(&h, &limits);
    feed(&h, "GET / HTTP/1.1\r\n", 16);
    for (int i = 0; i < 101; i++) {
        feed(&h, "X-A: b\r\n", 8);
    }
    feed(&h, "\r\n", 2);
    assert_int_equal(nw__http_parse_head(&h), NW_HTTP_FAILED);
    assert_int_equal(h.error_status, 431);
    nw__http_free(&h);

    memset(big, 'v', sizeof(big));
    memcpy(big, "GET / HTTP/1.1\r\nX-Big: ", 23);
    memcpy(big + 8500, "\r\n\r\n", 5);
    refused(big, 431);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_get),
        cmocka_unit_test(test_byte_by_byte),
        cmocka_unit_test(test_chunked_body),
        cmocka_unit_test(test_pipelined),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
