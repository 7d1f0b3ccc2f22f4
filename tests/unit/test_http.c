/* The parser glue: the request line, spans into the buffer, body decoding,
   pipelining, limits, and every refusal class with its status. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "http/http.h"

static nw_http_limits limits;

static int
setup(void **state)
{
    (void) state;
    nw__http_limits_default(&limits);
    return 0;
}

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

/* Parse a whole request (head and body, in one feed): 0 when accepted,
   else the refusal's status.  The decoded body goes to body. */
static int
run(const nw_http_limits *l, const char *req, size_t len, char *body,
    size_t *blen)
{
    nw_http h;
    char sink[4096];
    size_t got = 0;
    int status;

    nw__http_init(&h, l);
    feed(&h, req, len);
    if (nw__http_parse_head(&h) == NW_HTTP_HEAD_DONE) {
        while (h.state == NW_HTTP_BODY && h.pos < h.len) {
            got += nw__http_decode_body(&h, sink + got, sizeof(sink) - got);
        }
    }
    status = h.state == NW_HTTP_ERROR ? h.error_status
             : h.state == NW_HTTP_DONE ? 0
                                       : -1; /* incomplete */
    if (body != NULL) {
        memcpy(body, sink, got);
        *blen = got;
    }
    nw__http_free(&h);
    return status;
}

struct parse_case {
    const char *name;
    const char *req;
    size_t len;
    int status; /* 0: accepted */
};

#define C(name, req, status) {name, req, sizeof(req) - 1, status}
#define RUN(l, req, body, blen) run(l, req, sizeof(req) - 1, body, blen)

static const struct parse_case cases[] = {
    /* request line */
    C("simple", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 0),
    C("any token method", "PURGE /x HTTP/1.1\r\n\r\n", 0),
    C("method with dash", "M-SEARCH * HTTP/1.1\r\n\r\n", 400),
    C("custom method", "FOO-BAR /x HTTP/1.1\r\n\r\n", 0),
    C("lower-case method", "get / HTTP/1.1\r\n\r\n", 400),
    C("method with #", "GE#T / HTTP/1.1\r\n\r\n", 400),
    C("method too short", "GE / HTTP/1.1\r\n\r\n", 400),
    C("method too long", "ABCDEFGHIJKLMNOPQRSTU / HTTP/1.1\r\n\r\n", 400),
    C("method not a token", "G@T / HTTP/1.1\r\n\r\n", 400),
    C("method with ctl", "G\x01T / HTTP/1.1\r\n\r\n", 400),
    C("empty method", " / HTTP/1.1\r\n\r\n", 400),
    C("two spaces", "GET  / HTTP/1.1\r\n\r\n", 400),
    C("no version", "GET /\r\n\r\n", 400),
    C("space after version", "GET / HTTP/1.1 \r\n\r\n", 400),
    C("tab separator", "GET\t/ HTTP/1.1\r\n\r\n", 400),
    C("HTTP/1.0", "GET / HTTP/1.0\r\n\r\n", 0),
    C("HTTP/1.2 (Gunicorn accepts 1.x)", "GET / HTTP/1.2\r\n\r\n", 0),
    C("HTTP/2.0", "GET / HTTP/2.0\r\n\r\n", 400),
    C("HTTP/0.9", "GET / HTTP/0.9\r\n\r\n", 400),
    C("HTTP/11", "GET / HTTP/11\r\n\r\n", 400),
    C("lower-case http", "GET / http/1.1\r\n\r\n", 400),
    C("version with letters", "GET / HTTP/1.x\r\n\r\n", 400),
    C("asterisk with OPTIONS", "OPTIONS * HTTP/1.1\r\n\r\n", 0),
    C("asterisk with GET", "GET * HTTP/1.1\r\n\r\n", 400),
    C("authority with CONNECT", "CONNECT a.b:443 HTTP/1.1\r\n\r\n", 0),
    C("authority with GET", "GET a.b:443 HTTP/1.1\r\n\r\n", 400),
    C("path with CONNECT", "CONNECT /x HTTP/1.1\r\n\r\n", 400),
    C("absolute form", "GET http://a.b/x?y HTTP/1.1\r\n\r\n", 0),
    C("relative target", "GET x/y HTTP/1.1\r\n\r\n", 400),
    C("bad scheme", "GET 1http://a/ HTTP/1.1\r\n\r\n", 400),
    C("ctl in target", "GET /a\x7f HTTP/1.1\r\n\r\n", 400),
    C("nul in target", "GET /a\0b HTTP/1.1\r\n\r\n", 400),
    C("obs-text in target", "GET /caf\xe9 HTTP/1.1\r\n\r\n", 0),
    C("bare LF after line", "GET / HTTP/1.1\nHost: a\r\n\r\n", 400),
    C("bare CR in line", "GET /\r HTTP/1.1\r\n\r\n", 400),
    C("leading empty line", "\r\nGET / HTTP/1.1\r\n\r\n", 0),
    C("many leading empty lines",
      "\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\n\r\n", 400),
    C("leading bare LF", "\nGET / HTTP/1.1\r\n\r\n", 400),
    /* header lines */
    C("bare LF ends the head", "GET / HTTP/1.1\r\nHost: a\r\n\n", 400),
    C("bare LF ends a header", "GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n",
      400),
    C("bare CR in value", "GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", 400),
    C("CR CR LF", "GET / HTTP/1.1\r\nX: a\r\r\n\r\n", 400),
    C("nul in value", "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n", 400),
    C("ctl in value", "GET / HTTP/1.1\r\nX: a\x01" "b\r\n\r\n", 400),
    C("del in value", "GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n", 400),
    C("tab in value", "GET / HTTP/1.1\r\nX: a\tb\r\n\r\n", 0),
    C("obs-text in value", "GET / HTTP/1.1\r\nX: caf\xe9\r\n\r\n", 0),
    C("obs-fold", "GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n", 400),
    C("obs-fold tab", "GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n", 400),
    C("obs-fold after an empty value", "GET / HTTP/1.1\r\nX:\r\n b\r\n\r\n",
      400),
    C("obs-fold after spaces", "GET / HTTP/1.1\r\nX:  \r\n b\r\n\r\n",
      400),
    C("obs-fold of Content-Length",
      "POST / HTTP/1.1\r\nContent-Length:\r\n 3\r\n\r\nabc", 400),
    C("space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),
    C("tab before colon", "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", 400),
    C("empty name", "GET / HTTP/1.1\r\n: a\r\n\r\n", 400),
    C("empty name later", "GET / HTTP/1.1\r\nX: b\r\n: a\r\n\r\n", 400),
    C("ctl in name", "GET / HTTP/1.1\r\nX\x01Y: a\r\n\r\n", 400),
    C("no colon", "GET / HTTP/1.1\r\nHost\r\n\r\n", 400),
    C("space starts a line", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400),
    C("empty value", "GET / HTTP/1.1\r\nX:\r\n\r\n", 0),
    C("two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    C("two Content-Types",
      "POST / HTTP/1.1\r\nContent-Type: a\r\nContent-Type: b\r\n\r\n", 400),
    C("Expect 100-continue",
      "POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1"
      "\r\n\r\nx",
      0),
    C("other Expect", "GET / HTTP/1.1\r\nExpect: 200-ok\r\n\r\n", 417),
    C("other Expect on 1.0", "GET / HTTP/1.0\r\nExpect: foo\r\n\r\n", 417),
    /* framing */
    C("Content-Length", "POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
      0),
    C("Content-Length with spaces",
      "POST / HTTP/1.1\r\nContent-Length:  3 \r\n\r\nabc", 0),
    C("CL and TE", "POST / HTTP/1.1\r\nContent-Length: 3\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      400),
    C("TE and CL", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
                   "Content-Length: 3\r\n\r\n0\r\n\r\n",
      400),
    C("CL +3", "POST / HTTP/1.1\r\nContent-Length: +3\r\n\r\nabc", 400),
    C("CL -1", "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
    C("CL 3 3", "POST / HTTP/1.1\r\nContent-Length: 3 3\r\n\r\nabc", 400),
    C("CL list", "POST / HTTP/1.1\r\nContent-Length: 3,3\r\n\r\nabc", 400),
    C("CL hex", "POST / HTTP/1.1\r\nContent-Length: 0x3\r\n\r\nabc", 400),
    C("CL empty", "POST / HTTP/1.1\r\nContent-Length:\r\n\r\n", 400),
    C("CL twice, same", "POST / HTTP/1.1\r\nContent-Length: 3\r\n"
                        "Content-Length: 3\r\n\r\nabc",
      400),
    C("CL twice, different", "POST / HTTP/1.1\r\nContent-Length: 3\r\n"
                             "Content-Length: 4\r\n\r\nabcd",
      400),
    C("CL overflow",
      "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
      400),
    C("chunked", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "3\r\nabc\r\n0\r\n\r\n",
      0),
    C("chunked, upper case", "POST / HTTP/1.1\r\nTransfer-Encoding: CHUNKED"
                             "\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
      0),
    C("gzip, chunked", "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked"
                       "\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
      0),
    C("identity, chunked",
      "POST / HTTP/1.1\r\nTransfer-Encoding: identity, chunked\r\n\r\n"
      "0\r\n\r\n",
      0),
    C("chunked, gzip", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip"
                       "\r\n\r\n0\r\n\r\n",
      400),
    C("chunked twice", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, "
                       "chunked\r\n\r\n0\r\n\r\n",
      400),
    C("chunked in two headers",
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
      "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      400),
    C("gzip alone", "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
      400),
    C("unknown coding", "POST / HTTP/1.1\r\nTransfer-Encoding: xchunked"
                        "\r\n\r\n0\r\n\r\n",
      501),
    C("unknown coding first",
      "POST / HTTP/1.1\r\nTransfer-Encoding: foo, chunked\r\n\r\n0\r\n\r\n",
      501),
    C("empty coding", "POST / HTTP/1.1\r\nTransfer-Encoding: \r\n\r\n", 501),
    C("chunked with nbsp", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked"
                           "\xa0\r\n\r\n0\r\n\r\n",
      501),
    C("chunked on HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked"
                             "\r\n\r\n0\r\n\r\n",
      400),
    C("chunk size with sign", "POST / HTTP/1.1\r\nTransfer-Encoding: "
                              "chunked\r\n\r\n+3\r\nabc\r\n0\r\n\r\n",
      400),
    C("chunk size 0x", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
                       "\r\n0x3\r\nabc\r\n0\r\n\r\n",
      400),
    C("chunk size space", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked"
                          "\r\n\r\n3 \r\nabc\r\n0\r\n\r\n",
      400),
    C("chunk size empty", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked"
                          "\r\n\r\n\r\nabc\r\n0\r\n\r\n",
      400),
    C("chunk size overflow",
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
      "10000000000000000\r\nabc\r\n0\r\n\r\n",
      400),
    C("chunk extension", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
                         "\r\n3;a=b\r\nabc\r\n0\r\n\r\n",
      0),
    C("LF in chunk extension",
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3;a=b\nc\r\nabc\r\n0\r\n\r\n",
      400),
    C("CR in chunk extension",
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3;a\rb\r\nabc\r\n0\r\n\r\n",
      400),
    C("bare LF after chunk size",
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3\nabc\r\n0\r\n\r\n",
      400),
    C("chunk data too long",
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3\r\nabcd\r\n0\r\n\r\n",
      400),
    C("bare LF after chunk data",
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3\r\nabc\n0\r\n\r\n",
      400),
    C("bare LF after last chunk",
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3\r\nabc\r\n0\r\n\n",
      400),
    C("trailers", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "3\r\nabc\r\n0\r\nX-T: 1\r\nY-T: 2\r\n\r\n",
      0),
    C("bad trailer", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "0\r\nX-T : 1\r\n\r\n",
      400),
    C("trailer with empty name",
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
      "0\r\n: 1\r\n\r\n",
      400),
    C("trailer ends with bare LF",
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
      "0\r\nX: 1\r\n\n",
      400),
};

static void
test_cases(void **state)
{
    int failures = 0;
    (void) state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int got = run(&limits, cases[i].req, cases[i].len, NULL, NULL);
        if (got != cases[i].status) {
            print_error("%s: status %d, expected %d\n", cases[i].name, got,
                        cases[i].status);
            failures++;
        }
    }
    assert_int_equal(failures, 0);
}

static void
test_simple_get(void **state)
{
    nw_http h;
    (void) state;

    nw__http_init(&h, &limits);
    assert_int_equal(parse_all(&h, "GET /a/b?x=1 HTTP/1.1\r\nHost: ex\r\n"
                                   "User-Agent: t \r\nX-Other:v\r\n\r\n"),
                     NW_HTTP_HEAD_DONE);
    assert_true(span_is(&h, h.req.method, "GET"));
    assert_int_equal(h.req.method_id, NW_METHOD_GET);
    assert_true(span_is(&h, h.req.url, "/a/b?x=1"));
    assert_int_equal(h.req.http_major, 1);
    assert_int_equal(h.req.http_minor, 1);
    assert_int_equal(h.req.nheaders, 3);
    assert_true(span_is(&h, h.req.headers[0].name, "Host"));
    assert_int_equal(h.req.headers[0].id, NW_HDR_HOST);
    assert_true(span_is(&h, h.req.headers[0].value, "ex"));
    assert_true(span_is(&h, h.req.headers[1].name, "User-Agent"));
    assert_int_equal(h.req.headers[1].id, NW_HDR_USER_AGENT);
    /* trailing spaces are not part of the value */
    assert_true(span_is(&h, h.req.headers[1].value, "t"));
    assert_int_equal(h.req.headers[2].id, NW_HDR_OTHER);
    assert_true(span_is(&h, h.req.headers[2].value, "v"));
    assert_int_equal(h.state, NW_HTTP_DONE);
    assert_int_equal(h.req.content_length, -1);
    assert_true(h.req.keep_alive);
    nw__http_free(&h);
}

static void
test_header_ids(void **state)
{
    (void) state;
    assert_int_equal(nw__header_id("Content-Length", 14),
                     NW_HDR_CONTENT_LENGTH);
    assert_int_equal(nw__header_id("CONTENT-TYPE", 12), NW_HDR_CONTENT_TYPE);
    assert_int_equal(nw__header_id("host", 4), NW_HDR_HOST);
    assert_int_equal(nw__header_id("hosts", 5), NW_HDR_OTHER);
    assert_int_equal(nw__header_id("Script_Name", 11), NW_HDR_SCRIPT_NAME);
    assert_int_equal(nw__header_id("Script-Name", 11), NW_HDR_OTHER);
    /* only letters match their other case: CR is not '-', '_' is not '-' */
    assert_int_equal(nw__header_id("Content\rLength", 14), NW_HDR_OTHER);
    assert_int_equal(nw__header_id("X_Forwarded_For", 15), NW_HDR_OTHER);
    assert_int_equal(nw__header_id("x-CSRFTOKEN", 11), NW_HDR_X_CSRFTOKEN);
    assert_int_equal(nw__header_id("x", 1), NW_HDR_OTHER);
    assert_int_equal(nw__header_id("upgrade-insecure-requests", 25),
                     NW_HDR_UPGRADE_INSECURE_REQUESTS);
    for (unsigned id = 1; id < NW_HDR_COUNT; id++) {
        const char *name = nw__header_names[id];
        assert_int_equal(nw__header_id(name, strlen(name)), id);
    }
}

static void
test_custom_method_and_casefold(void **state)
{
    nw_http_limits l = limits;
    nw_http h;
    (void) state;

    nw__http_init(&h, &l);
    assert_int_equal(parse_all(&h, "PROPFIND /dav HTTP/1.1\r\n\r\n"),
                     NW_HTTP_HEAD_DONE);
    assert_true(span_is(&h, h.req.method, "PROPFIND"));
    assert_int_equal(h.req.method_id, NW_METHOD_OTHER);
    nw__http_free(&h);

    l.permit_unconventional_method = 1;
    assert_int_equal(RUN(&l, "get / HTTP/1.1\r\n\r\n", NULL, NULL), 0);
    assert_int_equal(RUN(&l, "GE / HTTP/1.1\r\n\r\n", NULL, NULL), 0);
    assert_int_equal(RUN(&l, "G@T / HTTP/1.1\r\n\r\n", NULL, NULL), 400);

    l.casefold_method = 1;
    nw__http_init(&h, &l);
    assert_int_equal(parse_all(&h, "post / HTTP/1.1\r\n\r\n"),
                     NW_HTTP_HEAD_DONE);
    assert_true(span_is(&h, h.req.method, "POST"));
    assert_int_equal(h.req.method_id, NW_METHOD_POST);
    nw__http_free(&h);

    l = limits;
    l.permit_unconventional_version = 1;
    assert_int_equal(RUN(&l, "GET / HTTP/2.0\r\n\r\n", NULL, NULL), 0);
    assert_int_equal(RUN(&l, "GET / HTTP/0.9\r\n\r\n", NULL, NULL), 0);
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
test_chunked_byte_by_byte(void **state)
{
    static const char req[] = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked"
                              "\r\n\r\n5\r\nhello\r\n1;x=y\r\n!\r\n0\r\n"
                              "T: v\r\n\r\nGET /next";
    nw_http h;
    char body[32];
    size_t got = 0, i;
    (void) state;

    nw__http_init(&h, &limits);
    for (i = 0; nw__http_parse_head(&h) == NW_HTTP_NEED_MORE; i++) {
        feed(&h, req + i, 1);
    }
    assert_int_equal(h.state, NW_HTTP_BODY);
    for (; h.state == NW_HTTP_BODY && i < sizeof(req) - 1; i++) {
        feed(&h, req + i, 1);
        got += nw__http_decode_body(&h, body + got, sizeof(body) - got);
    }
    assert_int_equal(h.state, NW_HTTP_DONE);
    assert_int_equal(got, 6);
    assert_memory_equal(body, "hello!", 6);
    /* nothing of the next request was consumed */
    assert_int_equal(i, sizeof(req) - 1 - strlen("GET /next"));
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
    assert_false(h.req.force_close);
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

    nw__http_init(&h, &limits);
    assert_int_equal(parse_all(&h, "POST / HTTP/1.1\r\nTransfer-Encoding: "
                                   "gzip, chunked\r\n\r\n0\r\n\r\n"),
                     NW_HTTP_HEAD_DONE);
    assert_true(h.req.force_close);
    nw__http_free(&h);
}

static void
test_pipelined(void **state)
{
    nw_http h;
    char body[8];
    (void) state;

    nw__http_init(&h, &limits);
    assert_int_equal(parse_all(&h, "POST /one HTTP/1.1\r\nHost: a\r\n"
                                   "Content-Length: 2\r\n\r\nab"
                                   "GET /two HTTP/1.1\r\nHost: b\r\n\r\n"
                                   "GET /three HTTP/1.0\r\n\r\n"),
                     NW_HTTP_HEAD_DONE);
    assert_true(span_is(&h, h.req.url, "/one"));
    assert_int_equal(nw__http_decode_body(&h, body, sizeof(body)), 2);
    assert_int_equal(h.state, NW_HTTP_DONE);
    nw__http_reset(&h);
    assert_int_equal(nw__http_parse_head(&h), NW_HTTP_HEAD_DONE);
    assert_true(span_is(&h, h.req.url, "/two"));
    assert_true(span_is(&h, h.req.headers[0].value, "b"));
    nw__http_reset(&h);
    assert_int_equal(nw__http_parse_head(&h), NW_HTTP_HEAD_DONE);
    assert_true(span_is(&h, h.req.url, "/three"));
    assert_int_equal(h.req.http_minor, 0);
    assert_false(h.req.keep_alive);
    nw__http_free(&h);
}

static void
test_keep_alive_and_expect(void **state)
{
    nw_http h;
    (void) state;

    nw__http_init(&h, &limits);
    parse_all(&h, "GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert_false(h.req.keep_alive);
    nw__http_clear(&h);
    parse_all(&h, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_true(h.req.keep_alive);
    nw__http_clear(&h);
    parse_all(&h, "GET / HTTP/1.1\r\nConnection: Upgrade\r\n"
                  "Upgrade: websocket\r\n\r\n");
    assert_true(h.req.upgrade);
    nw__http_clear(&h);
    parse_all(&h, "POST / HTTP/1.1\r\nExpect: 100-Continue\r\n"
                  "Content-Length: 1\r\n\r\n");
    assert_true(h.req.expect_continue);
    assert_int_equal(h.state, NW_HTTP_BODY);
    nw__http_clear(&h);
    /* HTTP/1.0 has no 100 Continue */
    parse_all(&h, "POST / HTTP/1.0\r\nExpect: 100-continue\r\n"
                  "Content-Length: 1\r\n\r\n");
    assert_false(h.req.expect_continue);
    nw__http_free(&h);
}

static void
test_limits(void **state)
{
    char big[9000];
    nw_http h;
    nw_http_limits l = limits;
    char body[64];
    size_t blen;
    (void) state;

    memset(big, 'a', sizeof(big));
    memcpy(big, "GET /", 5);
    memcpy(big + 5000, " HTTP/1.1\r\n\r\n", 13);
    assert_int_equal(run(&limits, big, 5013, NULL, NULL), 414);
    /* exactly at the limit: 4094 bytes of request line */
    memcpy(big + 4094 - 9, " HTTP/1.1\r\n\r\n", 13);
    assert_int_equal(run(&limits, big, 4094 + 4, NULL, NULL), 0);
    memcpy(big + 4095 - 9, " HTTP/1.1\r\n\r\n", 13);
    assert_int_equal(run(&limits, big, 4095 + 4, NULL, NULL), 414);

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
    memcpy(big + 8500, "\r\n\r\n", 4);
    assert_int_equal(run(&limits, big, 8504, NULL, NULL), 431);
    /* limit_request_field_size=0: no limit per field */
    l.field_size = SIZE_MAX;
    assert_int_equal(run(&l, big, 8504, NULL, NULL), 0);
    l = limits;
    /* a field of exactly limit_request_field_size bytes passes */
    l.field_size = 30;
    assert_int_equal(RUN(&l, "GET / HTTP/1.1\r\nX-Twenty-Four: 1234567890"
                             "12345\r\n\r\n", NULL, NULL),
                     0);
    assert_int_equal(RUN(&l, "GET / HTTP/1.1\r\nX-Twenty-Four: 1234567890"
                             "123456\r\n\r\n", NULL, NULL),
                     431);

    l = limits;
    l.body = 5;
    assert_int_equal(RUN(&l, "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n"
                             "12345", body, &blen),
                     0);
    assert_int_equal(RUN(&l, "POST / HTTP/1.1\r\nContent-Length: 6\r\n\r\n"
                             "123456", NULL, NULL),
                     413);
    assert_int_equal(RUN(&l, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked"
                             "\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", body, &blen),
                     0);
    assert_int_equal(blen, 5);
    assert_int_equal(RUN(&l, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked"
                             "\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n", NULL, NULL),
                     413);
}

static void
test_folding_and_spaces_permitted(void **state)
{
    nw_http_limits l = limits;
    nw_http h;
    (void) state;

    l.permit_obsolete_folding = 1;
    nw__http_init(&h, &l);
    assert_int_equal(parse_all(&h, "GET / HTTP/1.1\r\nX: a \r\n  b\r\n\tc"
                                   "\r\nY: d\r\n\r\n"),
                     NW_HTTP_HEAD_DONE);
    assert_true(span_is(&h, h.req.headers[0].value, "a b c"));
    assert_true(span_is(&h, h.req.headers[1].value, "d"));
    nw__http_free(&h);
    nw__http_init(&h, &l);
    assert_int_equal(parse_all(&h, "GET / HTTP/1.1\r\nX:\r\n b\r\n\r\n"),
                     NW_HTTP_HEAD_DONE);
    assert_true(span_is(&h, h.req.headers[0].value, "b"));
    nw__http_free(&h);

    l = limits;
    l.strip_header_spaces = 1;
    nw__http_init(&h, &l);
    feed(&h, "GET / HTTP/1.1\r\nHost  : a\r\nX", 28);
    assert_int_equal(nw__http_parse_head(&h), NW_HTTP_NEED_MORE);
    feed(&h, "-Y\t: b\r\n\r\n", 10);
    assert_int_equal(nw__http_parse_head(&h), NW_HTTP_HEAD_DONE);
    assert_true(span_is(&h, h.req.headers[0].name, "Host"));
    assert_true(span_is(&h, h.req.headers[0].value, "a"));
    assert_true(span_is(&h, h.req.headers[1].name, "X-Y"));
    assert_true(span_is(&h, h.req.headers[1].value, "b"));
    nw__http_free(&h);
}

static void
test_header_map(void **state)
{
    static const char *const forwarders[] = {"SCRIPT_NAME", "PATH_INFO"};
    static const char req[] = "GET /app/x HTTP/1.1\r\nX_Foo: 1\r\n"
                              "Script_Name: /app\r\n\r\n";
    nw_http_limits l = limits;
    nw_http h;
    (void) state;

    l.forwarder_headers = forwarders;
    l.nforwarder_headers = 2;
    /* drop (default): untrusted peers' underscore headers are marked */
    nw__http_init(&h, &l);
    assert_int_equal(parse_all(&h, req), NW_HTTP_HEAD_DONE);
    assert_true(h.req.headers[0].flags & NW_HDRF_DROP);
    assert_true(h.req.headers[1].flags & NW_HDRF_DROP);
    assert_false(h.req.has_script_name);
    nw__http_free(&h);
    /* a trusted front-end may send the forwarder headers */
    nw__http_init(&h, &l);
    h.trusted = 1;
    assert_int_equal(parse_all(&h, req), NW_HTTP_HEAD_DONE);
    assert_true(h.req.headers[0].flags & NW_HDRF_DROP);
    assert_false(h.req.headers[1].flags & NW_HDRF_DROP);
    assert_true(h.req.has_script_name);
    assert_true(span_is(&h, h.req.script_name, "/app"));
    nw__http_free(&h);

    l.header_map = NW_HEADER_MAP_REFUSE;
    assert_int_equal(run(&l, req, sizeof(req) - 1, NULL, NULL), 400);
    l.header_map = NW_HEADER_MAP_DANGEROUS;
    nw__http_init(&h, &l);
    assert_int_equal(parse_all(&h, req), NW_HTTP_HEAD_DONE);
    assert_false(h.req.headers[0].flags & NW_HDRF_DROP);
    nw__http_free(&h);
}

static void
test_secure_scheme(void **state)
{
    static const char *const names[] = {"X-FORWARDED-PROTO",
                                        "X-FORWARDED-SSL"};
    static const char *const values[] = {"https", "on"};
    nw_http_limits l = limits;
    nw_http h;
    (void) state;

    l.scheme_names = names;
    l.scheme_values = values;
    l.nscheme = 2;
    nw__http_init(&h, &l);
    h.trusted = 1;
    parse_all(&h, "GET / HTTP/1.1\r\nX-Forwarded-Proto: https\r\n\r\n");
    assert_int_equal(h.req.scheme, NW_SCHEME_HTTPS);
    nw__http_reset(&h);
    parse_all(&h, "GET / HTTP/1.1\r\nX-Forwarded-Proto: http\r\n\r\n");
    assert_int_equal(h.req.scheme, NW_SCHEME_HTTP);
    nw__http_reset(&h);
    assert_int_equal(parse_all(&h, "GET / HTTP/1.1\r\nX-Forwarded-Proto: "
                                   "https\r\nX-Forwarded-Ssl: off\r\n\r\n"),
                     NW_HTTP_FAILED);
    assert_int_equal(h.error_status, 400);
    nw__http_clear(&h);
    /* an untrusted peer's scheme headers mean nothing */
    parse_all(&h, "GET / HTTP/1.1\r\nX-Forwarded-Proto: https\r\n\r\n");
    assert_int_equal(h.req.scheme, NW_SCHEME_NONE);
    nw__http_free(&h);
}

static void
test_refusal_stops_parsing(void **state)
{
    nw_http h;
    (void) state;

    /* a refused head stays refused: nothing behind it is parsed */
    nw__http_init(&h, &limits);
    assert_int_equal(parse_all(&h, "GET / HTTP/1.1\r\nContent-Length: 1\r\n"
                                   "Transfer-Encoding: chunked\r\n\r\n"
                                   "0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n"),
                     NW_HTTP_FAILED);
    assert_int_equal(nw__http_parse_head(&h), NW_HTTP_FAILED);
    assert_int_equal(nw__http_decode_body(&h, (char[8]){0}, 8), 0);
    nw__http_free(&h);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_cases, setup),
        cmocka_unit_test_setup(test_simple_get, setup),
        cmocka_unit_test_setup(test_header_ids, setup),
        cmocka_unit_test_setup(test_custom_method_and_casefold, setup),
        cmocka_unit_test_setup(test_byte_by_byte, setup),
        cmocka_unit_test_setup(test_chunked_byte_by_byte, setup),
        cmocka_unit_test_setup(test_chunked_body, setup),
        cmocka_unit_test_setup(test_pipelined, setup),
        cmocka_unit_test_setup(test_keep_alive_and_expect, setup),
        cmocka_unit_test_setup(test_limits, setup),
        cmocka_unit_test_setup(test_folding_and_spaces_permitted, setup),
        cmocka_unit_test_setup(test_header_map, setup),
        cmocka_unit_test_setup(test_secure_scheme, setup),
        cmocka_unit_test_setup(test_refusal_stops_parsing, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
