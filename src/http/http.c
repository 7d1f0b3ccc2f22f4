#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <narwhal/api.h>

#include "http/http.h"
#include "base/memory.h"

#define INITIAL_BUF 8192
#define BODY_ROOM 16384
/* RFC 9112 2.2: at least one empty line before a request is ignored */
#define MAX_BLANK_LINES 4

#define CRLFCRLF 0x0d0a0d0au

/* ------------------------------------------------------------------------
 * Known header names
 */

const char *const nw__header_names[NW_HDR_COUNT] = {
    NULL,
#define X(id, name, key) name,
    NW_HEADER_IDS(X)
#undef X
};

const char *const nw__header_keys[NW_HDR_COUNT] = {
    NULL,
#define X(id, name, key) key,
    NW_HEADER_IDS(X)
#undef X
};

/* The longest known name is "upgrade-insecure-requests" (25). */
#define MAX_KNOWN_NAME 26
static uint8_t by_len[MAX_KNOWN_NAME][8];
static uint8_t by_len_n[MAX_KNOWN_NAME];

static void
header_index_init(void)
{
    for (unsigned id = 1; id < NW_HDR_COUNT; id++) {
        size_t n = strlen(nw__header_names[id]);
        by_len[n][by_len_n[n]++] = (uint8_t) id;
    }
}

unsigned
nw__header_id(const char *name, size_t len)
{
    if (len >= MAX_KNOWN_NAME) {
        return NW_HDR_OTHER;
    }
    for (unsigned i = 0; i < by_len_n[len]; i++) {
        unsigned id = by_len[len][i];
        const char *known = nw__header_names[id];
        /* every known name starts with a letter: a cheap first test */
        if ((name[0] | 0x20) == known[0] && nw__lower_is(name, known, len)) {
            return id;
        }
    }
    return NW_HDR_OTHER;
}

/* ------------------------------------------------------------------------
 * Characters
 */

/* RFC 9110 tchar: the bytes of a token (methods, header names) */
const uint8_t nw__tchar[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1,
    ['*'] = 1, ['+'] = 1, ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1,
    ['`'] = 1, ['|'] = 1, ['~'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1,
    ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1,
    ['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1,
    ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1,
    ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
    ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1,
    ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1,
    ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1,
    ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
    ['y'] = 1, ['z'] = 1,
};

static int
is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static int
token_is(const char *s, size_t n, const char *lower)
{
    return strlen(lower) == n && strncasecmp(s, lower, n) == 0;
}

/* ------------------------------------------------------------------------
 * Refusals
 */

void
nw__http_fail(nw_http *h, int status, const char *reason)
{
    h->state = NW_HTTP_ERROR;
    h->error_status = status;
    h->error_reason = reason;
}

/* From inside a callback: llhttp stops with HPE_USER. */
static int
refuse(nw_http *h, int status, const char *reason)
{
    h->error_status = status;
    h->error_reason = reason;
    llhttp_set_error_reason(&h->parser, reason);
    return HPE_USER;
}

/* ------------------------------------------------------------------------
 * The request line, parsed here: llhttp knows only its own list of
 * methods, Gunicorn accepts any token.
 */

static unsigned
method_id(const char *m, size_t n)
{
    switch (n) {
    case 3:
        if (memcmp(m, "GET", 3) == 0) {
            return NW_METHOD_GET;
        }
        if (memcmp(m, "PUT", 3) == 0) {
            return NW_METHOD_PUT;
        }
        break;
    case 4:
        if (memcmp(m, "POST", 4) == 0) {
            return NW_METHOD_POST;
        }
        if (memcmp(m, "HEAD", 4) == 0) {
            return NW_METHOD_HEAD;
        }
        break;
    case 5:
        if (memcmp(m, "PATCH", 5) == 0) {
            return NW_METHOD_PATCH;
        }
        if (memcmp(m, "TRACE", 5) == 0) {
            return NW_METHOD_TRACE;
        }
        break;
    case 6:
        if (memcmp(m, "DELETE", 6) == 0) {
            return NW_METHOD_DELETE;
        }
        break;
    case 7:
        if (memcmp(m, "OPTIONS", 7) == 0) {
            return NW_METHOD_OPTIONS;
        }
        if (memcmp(m, "CONNECT", 7) == 0) {
            return NW_METHOD_CONNECT;
        }
        break;
    }
    return NW_METHOD_OTHER;
}

/* RFC 9112 3.2: origin-form, absolute-form, authority-form (CONNECT only)
   or asterisk-form (OPTIONS only). */
static int
target_ok(const char *t, size_t n, unsigned method)
{
    size_t i;

    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char) t[i];
        if (c <= 0x20 || c == 0x7f) {
            return 0; /* controls and spaces; obs-text passes as bytes */
        }
    }
    if (method == NW_METHOD_CONNECT) {
        /* authority-form: host:port, no path, no scheme */
        return t[0] != '/' && memchr(t, '/', n) == NULL
               && memchr(t, ':', n) != NULL && memchr(t, '@', n) == NULL;
    }
    if (n == 1 && t[0] == '*') {
        return method == NW_METHOD_OPTIONS;
    }
    if (t[0] == '/') {
        return 1;
    }
    /* absolute-form: scheme "://" */
    if (!((t[0] | 0x20) >= 'a' && (t[0] | 0x20) <= 'z')) {
        return 0;
    }
    for (i = 1; i < n; i++) {
        char c = t[i];
        if (c == ':') {
            return i + 2 < n && t[i + 1] == '/' && t[i + 2] == '/';
        }
        if (!(((c | 0x20) >= 'a' && (c | 0x20) <= 'z')
              || (c >= '0' && c <= '9') || c == '+' || c == '-'
              || c == '.')) {
            return 0;
        }
    }
    return 0;
}

static const char prefix10[] = "GET / HTTP/1.0\r\n";
static const char prefix11[] = "GET / HTTP/1.1\r\n";

/* The parser's state just after each of those lines, made once: a request
   starts from a copy instead of parsing the line again (about 470
   instructions a request).  No span is open at the end of a line, so the
   copy holds no pointer into the bytes it was made from. */
static llhttp_t after_prefix10, after_prefix11;

static enum nw_http_result
parse_request_line(nw_http *h)
{
    const nw_http_limits *l = h->limits;
    nw_request *r = &h->req;
    char *p, *end, *nl, *sp1, *sp2, *ver;
    size_t n, mlen;
    unsigned major, minor;

    /* empty lines before a request (a client's stray CRLF after a body)
       are skipped, a few at most */
    for (;;) {
        p = h->buf + h->pos;
        end = h->buf + h->len;
        if (end - p >= 2 && p[0] == '\r' && p[1] == '\n') {
            if (h->pos - h->head_start >= 2 * MAX_BLANK_LINES) {
                nw__http_fail(h, 400, "Invalid request line: too many "
                                      "empty lines before it");
                return NW_HTTP_FAILED;
            }
            h->pos += 2;
            continue;
        }
        break;
    }
    nl = memchr(p, '\n', (size_t) (end - p));
    if (nl == NULL) {
        if ((size_t) (end - p) > l->request_line + 1) {
            nw__http_fail(h, 414, "Request Line is too large");
            return NW_HTTP_FAILED;
        }
        return NW_HTTP_NEED_MORE;
    }
    if (nl == p || nl[-1] != '\r') {
        nw__http_fail(h, 400, "Invalid request line: it must end with CRLF");
        return NW_HTTP_FAILED;
    }
    n = (size_t) (nl - 1 - p);
    if (n > l->request_line) {
        nw__http_fail(h, 414, "Request Line is too large");
        return NW_HTTP_FAILED;
    }
    end = p + n;
    sp1 = memchr(p, ' ', n);
    if (sp1 == NULL || sp1 == p) {
        nw__http_fail(h, 400, "Invalid request line");
        return NW_HTTP_FAILED;
    }
    mlen = (size_t) (sp1 - p);
    for (size_t i = 0; i < mlen; i++) {
        unsigned char c = (unsigned char) p[i];
        if (!nw__tchar[c]) {
            nw__http_fail(h, 400, "Invalid Method: not a token");
            return NW_HTTP_FAILED;
        }
        if (!l->permit_unconventional_method
            && ((c >= 'a' && c <= 'z') || c == '#')) {
            nw__http_fail(h, 400, "Invalid Method: lower-case letters or "
                                  "'#' (see "
                                  "--permit-unconventional-http-method)");
            return NW_HTTP_FAILED;
        }
    }
    if (!l->permit_unconventional_method && (mlen < 3 || mlen > 20)) {
        nw__http_fail(h, 400, "Invalid Method: shorter than 3 or longer "
                              "than 20 characters");
        return NW_HTTP_FAILED;
    }
    if (l->casefold_method) {
        for (size_t i = 0; i < mlen; i++) {
            if (p[i] >= 'a' && p[i] <= 'z') {
                p[i] = (char) (p[i] - 32);
            }
        }
    }
    r->method.off = (uint32_t) (p - h->buf);
    r->method.len = (uint32_t) mlen;
    r->method_id = (uint8_t) method_id(p, mlen);
    /* after CONNECT the connection is a tunnel, never another request */
    r->force_close = r->method_id == NW_METHOD_CONNECT;

    sp2 = memchr(sp1 + 1, ' ', (size_t) (end - sp1 - 1));
    if (sp2 == NULL || sp2 == sp1 + 1) {
        nw__http_fail(h, 400, "Invalid request line");
        return NW_HTTP_FAILED;
    }
    if (!target_ok(sp1 + 1, (size_t) (sp2 - sp1 - 1), r->method_id)) {
        nw__http_fail(h, 400, "Invalid request target");
        return NW_HTTP_FAILED;
    }
    r->url.off = (uint32_t) (sp1 + 1 - h->buf);
    r->url.len = (uint32_t) (sp2 - sp1 - 1);

    ver = sp2 + 1;
    if (end - ver != 8 || memcmp(ver, "HTTP/", 5) != 0 || ver[5] < '0'
        || ver[5] > '9' || ver[6] != '.' || ver[7] < '0' || ver[7] > '9') {
        nw__http_fail(h, 400, "Invalid HTTP Version");
        return NW_HTTP_FAILED;
    }
    major = (unsigned) (ver[5] - '0');
    minor = (unsigned) (ver[7] - '0');
    if (major != 1 && !l->permit_unconventional_version) {
        nw__http_fail(h, 400, "Invalid HTTP Version: only 1.0 and 1.1 (see "
                              "--permit-unconventional-http-version)");
        return NW_HTTP_FAILED;
    }
    r->http_major = (uint8_t) major;
    r->http_minor = (uint8_t) minor;

    h->pos = (size_t) (nl + 1 - h->buf);
    h->scanned = h->pos;
    h->line_done = 1;
    /* llhttp parses the headers and the body after a request line of its
       own with the same framing-relevant version */
    {
        void *data = h->parser.data;
        h->parser = major > 1 || (major == 1 && minor >= 1) ? after_prefix11
                                                            : after_prefix10;
        h->parser.data = data;
    }
    return NW_HTTP_HEAD_DONE;
}

/* ------------------------------------------------------------------------
 * llhttp callbacks (head and body)
 */

static void
span_add(nw_http *h, nw_span *s, const char *at, size_t n)
{
    /* llhttp hands out pointers into the bytes given to llhttp_execute,
       which are always in h->buf; a span is their offset from buf, so
       growing the buffer never invalidates it. */
    if (s->len == 0) {
        s->off = (uint32_t) (at - h->buf);
    }
    s->len += (uint32_t) n;
}

static int
on_header_field(llhttp_t *p, const char *at, size_t n)
{
    nw_http *h = p->data;
    nw_header *hd;

    if (h->state != NW_HTTP_HEAD) {
        /* a trailer: checked by llhttp and here, then ignored */
        if (n > 0) {
            h->in_field = 1;
        }
        return 0;
    }
    if (!h->in_field) {
        if (h->req.nheaders >= h->limits->fields) {
            return refuse(h, 431, "too many header fields");
        }
        if (h->req.nheaders == h->max_headers) {
            h->max_headers = h->max_headers ? h->max_headers * 2 : 16;
            h->req.headers = nw__xrealloc(h->req.headers,
                                          h->max_headers * sizeof(nw_header));
        }
        hd = &h->req.headers[h->req.nheaders++];
        memset(hd, 0, sizeof(*hd));
        h->in_field = 1;
        h->value_started = 0;
        h->folded = 0;
    }
    hd = &h->req.headers[h->req.nheaders - 1];
    span_add(h, &hd->name, at, n);
    if ((size_t) (at + n - (h->buf + hd->name.off)) > h->limits->field_size) {
        return refuse(h, 431, "header field is too large");
    }
    return 0;
}

static int
forwarder_name(const nw_http *h, const char *name, size_t n)
{
    const nw_http_limits *l = h->limits;

    for (size_t i = 0; i < l->nforwarder_headers; i++) {
        const char *f = l->forwarder_headers[i];
        if ((f[0] == '*' && f[1] == '\0') || token_is(name, n, f)) {
            return 1;
        }
    }
    return 0;
}

static int
on_header_field_complete(llhttp_t *p)
{
    nw_http *h = p->data;
    nw_header *hd;
    const char *name;

    if (!h->in_field || (h->state == NW_HTTP_HEAD
                         && h->req.headers[h->req.nheaders - 1].name.len
                                == 0)) {
        /* llhttp lets ": value" through */
        return refuse(h, 400, "Invalid header name: empty");
    }
    if (h->state != NW_HTTP_HEAD) {
        return 0;
    }
    hd = &h->req.headers[h->req.nheaders - 1];
    name = h->buf + hd->name.off;
    hd->id = (uint16_t) nw__header_id(name, hd->name.len);
    /* (a known name has no '_' but SCRIPT_NAME) */
    if ((hd->id == NW_HDR_OTHER || hd->id == NW_HDR_SCRIPT_NAME)
        && memchr(name, '_', hd->name.len) != NULL) {
        /* '_' and '-' both become '_' in the environ, so X_Forwarded_For
           could pose as X-Forwarded-For (Gunicorn's header_map) */
        if ((h->trusted && forwarder_name(h, name, hd->name.len))
            || h->limits->header_map == NW_HEADER_MAP_DANGEROUS) {
            return 0;
        }
        if (h->limits->header_map == NW_HEADER_MAP_REFUSE) {
            return refuse(h, 400, "Invalid header name: '_' in it "
                                  "(header_map=refuse)");
        }
        hd->flags |= NW_HDRF_DROP;
    }
    return 0;
}

static int
on_header_value(llhttp_t *p, const char *at, size_t n)
{
    nw_http *h = p->data;
    nw_header *hd;
    const char *start;

    if (!h->in_field) {
        return refuse(h, 400, "Invalid header name: empty");
    }
    if (h->state != NW_HTTP_HEAD || n == 0) {
        return 0;
    }
    hd = &h->req.headers[h->req.nheaders - 1];
    if (!h->value_started) {
        /* llhttp hands out the text after a fold ("X:\r\n b") as if it
           were on the header's line: a line break between the name and
           the first piece is a fold */
        const char *from = h->buf + hd->name.off + hd->name.len;
        /* (only the colon and spaces, usually: no memchr call) */
        for (const char *q = from; q < at; q++) {
            if (*q == '\n') {
                h->folded = 1;
                break;
            }
        }
        h->value_started = 1;
        hd->value.off = (uint32_t) (at - h->buf);
    }
    /* the span runs to the end of this piece: continuation lines and
       their CRLFs included, so a fold is seen and can be undone */
    start = h->buf + hd->value.off;
    hd->value.len = (uint32_t) (at + n - start);
    if ((size_t) (at + n - (h->buf + hd->name.off)) > h->limits->field_size) {
        return refuse(h, 431, "header field is too large");
    }
    return 0;
}

/* Obsolete line folding, permitted: each "CRLF 1*(SP/HTAB)" becomes one
   space, in place (Gunicorn joins the stripped lines with a space). */
static void
unfold(nw_http *h, nw_header *hd)
{
    char *v = h->buf + hd->value.off;
    size_t j = 0, n = hd->value.len;

    for (size_t i = 0; i < n; i++) {
        if (v[i] == '\r' || v[i] == '\n') {
            while (j > 0 && is_ows(v[j - 1])) {
                j--;
            }
            while (i + 1 < n && (v[i + 1] == '\r' || v[i + 1] == '\n'
                                 || is_ows(v[i + 1]))) {
                i++;
            }
            v[j++] = ' ';
        } else {
            v[j++] = v[i];
        }
    }
    hd->value.len = (uint32_t) j;
}

/* Transfer-Encoding, a comma-separated list over all such headers:
   chunked once and last; identity, gzip, deflate, compress before it
   (the last three force a close, as Gunicorn); anything else is 501. */
static int
transfer_encoding(nw_http *h, const char *v, size_t n)
{
    const char *end = v + n;

    h->te_seen = 1;
    for (;;) {
        const char *comma = memchr(v, ',', (size_t) (end - v));
        const char *e = comma ? comma : end;
        const char *s = v;

        while (s < e && is_ows(*s)) {
            s++;
        }
        while (e > s && is_ows(e[-1])) {
            e--;
        }
        if (h->te_chunked) {
            /* nothing may follow chunked: stacked codings are never meant
               and a proxy may frame them differently */
            return refuse(h, 400, "Invalid Transfer-Encoding: chunked must "
                                  "be the last coding");
        }
        if (token_is(s, (size_t) (e - s), "chunked")) {
            h->te_chunked = 1;
        } else if (token_is(s, (size_t) (e - s), "identity")) {
            /* allowed before chunked, does nothing */
        } else if (token_is(s, (size_t) (e - s), "gzip")
                   || token_is(s, (size_t) (e - s), "deflate")
                   || token_is(s, (size_t) (e - s), "compress")) {
            h->req.force_close = 1;
        } else {
            return refuse(h, 501, "Unsupported transfer coding");
        }
        if (comma == NULL) {
            return 0;
        }
        v = comma + 1;
    }
}

static int
secure_scheme(nw_http *h, const nw_header *hd)
{
    const nw_http_limits *l = h->limits;
    const char *name = h->buf + hd->name.off;
    const char *value = h->buf + hd->value.off;

    for (size_t i = 0; i < l->nscheme; i++) {
        if (token_is(name, hd->name.len, l->scheme_names[i])) {
            const char *want = l->scheme_values[i];
            unsigned s = (strlen(want) == hd->value.len
                          && memcmp(value, want, hd->value.len) == 0)
                             ? NW_SCHEME_HTTPS
                             : NW_SCHEME_HTTP;
            if (h->req.scheme != NW_SCHEME_NONE && h->req.scheme != s) {
                return refuse(h, 400, "Contradictory scheme headers");
            }
            h->req.scheme = (uint8_t) s;
        }
    }
    return 0;
}

static int
on_header_value_complete(llhttp_t *p)
{
    nw_http *h = p->data;
    nw_request *r = &h->req;
    nw_header *hd;
    const char *value;

    if (!h->in_field) {
        return refuse(h, 400, "Invalid header name: empty");
    }
    h->in_field = 0;
    if (h->state != NW_HTTP_HEAD) {
        return 0;
    }
    hd = &r->headers[r->nheaders - 1];
    value = h->buf + hd->value.off;
    while (hd->value.len > 0 && is_ows(value[hd->value.len - 1])) {
        hd->value.len--;
    }
    /* llhttp passes "\r\n " continuation lines on in the value; RFC 9112
       obsoletes them and a proxy may split the header differently */
    if (h->folded || memchr(value, '\n', hd->value.len) != NULL
        || memchr(value, '\r', hd->value.len) != NULL) {
        if (!h->limits->permit_obsolete_folding) {
            return refuse(h, 400, "Obsolete line folding in a header (see "
                                  "--permit-obsolete-folding)");
        }
        unfold(h, hd);
    }
    if (h->trusted && h->limits->nscheme > 0 && secure_scheme(h, hd) != 0) {
        return HPE_USER;
    }
    switch (hd->id) {
    case NW_HDR_HOST:
        if (h->hosts++ > 0) {
            return refuse(h, 400, "Invalid header: more than one Host");
        }
        break;
    case NW_HDR_CONTENT_TYPE:
        if (h->content_types++ > 0) {
            return refuse(h, 400, "Invalid header: more than one "
                                  "Content-Type");
        }
        break;
    case NW_HDR_TRANSFER_ENCODING:
        return transfer_encoding(h, value, hd->value.len);
    case NW_HDR_EXPECT:
        if (hd->value.len == 12 && strncasecmp(value, "100-continue", 12) == 0) {
            /* HTTP/1.0 has no 100 Continue: the header is ignored */
            r->expect_continue = r->http_major > 1
                                 || (r->http_major == 1 && r->http_minor >= 1);
        } else {
            return refuse(h, 417, "Expectation Failed: only 100-continue is "
                                  "supported");
        }
        break;
    case NW_HDR_SCRIPT_NAME:
        if (!(hd->flags & NW_HDRF_DROP)) {
            r->script_name = hd->value;
            r->has_script_name = 1;
        }
        break;
    default:
        break;
    }
    return 0;
}

static int
on_headers_complete(llhttp_t *p)
{
    nw_http *h = p->data;
    nw_request *r = &h->req;

    r->chunked = (p->flags & F_CHUNKED) ? 1 : 0;
    if (h->te_seen && !h->te_chunked) {
        return refuse(h, 400, "Invalid Transfer-Encoding: chunked must be "
                              "the last coding");
    }
    if (r->chunked != h->te_chunked) {
        return refuse(h, 400, "Invalid Transfer-Encoding");
    }
    if (r->chunked && (p->flags & F_CONTENT_LENGTH)) {
        return refuse(h, 400, "Invalid header: Content-Length with "
                              "Transfer-Encoding");
    }
    if (r->chunked && !(r->http_major > 1 || r->http_minor >= 1)) {
        return refuse(h, 400, "Invalid Transfer-Encoding: chunked on "
                              "HTTP/1.0");
    }
    r->content_length = (p->flags & F_CONTENT_LENGTH)
                            ? (int64_t) p->content_length
                            : -1;
    if (h->limits->body > 0 && r->content_length > 0
        && (uint64_t) r->content_length > h->limits->body) {
        return refuse(h, 413, "Request body is larger than "
                              "limit_request_body");
    }
    /* Gunicorn's should_close: Connection decides, else the version */
    if (p->flags & F_CONNECTION_CLOSE) {
        r->keep_alive = 0;
    } else if (p->flags & F_CONNECTION_KEEP_ALIVE) {
        r->keep_alive = 1;
    } else {
        r->keep_alive = r->http_major > 1
                        || (r->http_major == 1 && r->http_minor >= 1);
    }
    r->upgrade = (p->flags & F_CONNECTION_UPGRADE) && p->upgrade;
    r->has_body = r->chunked || r->content_length > 0;
    /* Stop here: the caller builds the environ before any body byte is
       read, and a request without a body is complete. */
    return HPE_PAUSED;
}

static int
on_body(llhttp_t *p, const char *at, size_t n)
{
    nw_http *h = p->data;

    /* The caller feeds at most as many raw bytes as it has room for, and
       decoding never makes bytes, so this fits. */
    memcpy(h->body_dst + h->body_got, at, n);
    h->body_got += n;
    return 0;
}

static int
on_message_complete(llhttp_t *p)
{
    nw_http *h = p->data;
    h->state = NW_HTTP_DONE;
    /* Stop before a pipelined request: it is parsed only after this one's
       response is written. */
    return HPE_PAUSED;
}

static llhttp_settings_t parser_settings;

void
nw__http_limits_default(nw_http_limits *l)
{
    memset(l, 0, sizeof(*l));
    l->request_line = 4094;
    l->fields = 100;
    l->field_size = 8190;
    l->header_map = NW_HEADER_MAP_DROP;
}

static void
after_prefix(llhttp_t *p, const char *line, size_t len)
{
    llhttp_init(p, HTTP_REQUEST, &parser_settings);
    /* No callback runs on a request line: data is never looked at.  The
       lines are ours and valid; an llhttp refusing them is a broken
       build, not a request to answer. */
    if (llhttp_execute(p, line, len) != HPE_OK) {
        abort();
    }
}

void
nw__http_init(nw_http *h, const nw_http_limits *limits)
{
    if (parser_settings.on_message_complete == NULL) {
        header_index_init();
        llhttp_settings_init(&parser_settings);
        parser_settings.on_header_field = on_header_field;
        parser_settings.on_header_field_complete = on_header_field_complete;
        parser_settings.on_header_value = on_header_value;
        parser_settings.on_header_value_complete = on_header_value_complete;
        parser_settings.on_headers_complete = on_headers_complete;
        parser_settings.on_body = on_body;
        parser_settings.on_message_complete = on_message_complete;
        after_prefix(&after_prefix10, prefix10, sizeof(prefix10) - 1);
        after_prefix(&after_prefix11, prefix11, sizeof(prefix11) - 1);
    }
    memset(h, 0, sizeof(*h));
    h->limits = limits;
    h->head_max = limits->request_line + 2
                  + (size_t) limits->fields
                        * ((limits->field_size == SIZE_MAX ? 8190
                                                           : limits->field_size)
                           + 2)
                  + 2;
    h->cap = INITIAL_BUF;
    h->buf = nw__xmalloc(h->cap);
    llhttp_init(&h->parser, HTTP_REQUEST, &parser_settings);
    h->parser.data = h;
    nw__http_reset(h);
}

void
nw__http_free(nw_http *h)
{
    free(h->buf);
    free(h->req.headers);
    h->buf = NULL;
    h->req.headers = NULL;
}

void
nw__http_reset(nw_http *h)
{
    nw_header *headers = h->req.headers;
    unsigned trusted = h->trusted;

    if (h->pos > 0) {
        memmove(h->buf, h->buf + h->pos, h->len - h->pos);
        h->len -= h->pos;
        h->pos = 0;
    }
    memset(&h->req, 0, sizeof(h->req));
    h->req.headers = headers;
    h->req.content_length = -1;
    h->state = NW_HTTP_HEAD;
    h->head_start = h->head_end = h->scanned = 0;
    h->error_status = 0;
    h->error_reason = NULL;
    h->body_total = 0;
    h->tail = 0;
    h->line_done = h->in_field = h->te_seen = h->te_chunked = 0;
    h->hosts = h->content_types = 0;
    h->trusted = trusted;
    /* Each request starts from a fresh parser state: keep-alive is decided
       here, not by llhttp, and a paused parser needs no resume. */
    llhttp_reset(&h->parser);
}

void
nw__http_clear(nw_http *h)
{
    h->len = h->pos = 0;
    h->trusted = 0;
    nw__http_reset(h);
}

/* Buffers of idle connections (event mode) wait here for the next
   connection that has bytes to read, so a thousand idle keep-alive
   connections hold no buffer and a busy one takes no malloc. */
#define POOL_MAX 256
static char *pool[POOL_MAX];
static unsigned pooled;

void
nw__http_park(nw_http *h)
{
    if (h->buf == NULL || h->len != h->pos) {
        return;
    }
    if (h->cap == INITIAL_BUF && pooled < POOL_MAX) {
        pool[pooled++] = h->buf;
    } else {
        free(h->buf);
    }
    h->buf = NULL;
    h->cap = h->len = h->pos = 0;
}

size_t
nw__http_room(nw_http *h)
{
    size_t want;

    if (h->buf == NULL) {
        h->buf = pooled > 0 ? pool[--pooled] : nw__xmalloc(INITIAL_BUF);
        h->cap = INITIAL_BUF;
        h->len = h->pos = 0;
    }
    if (h->state == NW_HTTP_HEAD) {
        if (h->len < h->cap) {
            return h->cap - h->len;
        }
        if (h->cap >= h->head_max + h->head_start) {
            return 0;
        }
        want = h->cap * 2 < h->head_max + h->head_start
                   ? h->cap * 2
                   : h->head_max + h->head_start;
    } else {
        /* Body bytes already decoded are dropped: the head stays put (the
           access log and hooks still read it). */
        if (h->pos == h->len && h->state == NW_HTTP_BODY) {
            h->pos = h->len = h->head_end;
        }
        if (h->cap - h->len >= BODY_ROOM / 2) {
            return h->cap - h->len;
        }
        want = h->len + BODY_ROOM;
    }
    h->buf = nw__xrealloc(h->buf, want);
    h->cap = want;
    return h->cap - h->len;
}

static enum nw_http_result
failed(nw_http *h, llhttp_errno_t e)
{
    if (h->error_status == 0) {
        const char *why = llhttp_get_error_reason(&h->parser);
        int status = 400;
        if (e == HPE_INVALID_CHUNK_SIZE
            && why != NULL && strstr(why, "overflow") != NULL) {
            why = "Invalid chunk size: too large";
        }
        nw__http_fail(h, status, why ? why : llhttp_errno_name(e));
    } else {
        h->state = NW_HTTP_ERROR;
    }
    return NW_HTTP_FAILED;
}

/* strip_header_spaces (Gunicorn's dangerous option): "Name : value"
   becomes "Name: value" before llhttp, which refuses the space, sees the
   line.  Only complete lines are rewritten; returns the end of them. */
static size_t
strip_spaces(nw_http *h)
{
    while (h->scanned < h->len) {
        char *line = h->buf + h->scanned;
        char *nl = memchr(line, '\n', h->len - h->scanned);
        char *colon, *ws;
        size_t cut;

        if (nl == NULL) {
            return h->scanned;
        }
        if (nl == line || (nl == line + 1 && line[0] == '\r')) {
            h->scanned = h->len; /* the end of the head: done */
            return h->len;
        }
        colon = is_ows(line[0]) ? NULL : memchr(line, ':', (size_t) (nl - line));
        if (colon != NULL) {
            ws = colon;
            while (ws > line && is_ows(ws[-1])) {
                ws--;
            }
            cut = (size_t) (colon - ws);
            if (cut > 0 && ws > line) {
                memmove(ws, colon, h->len - (size_t) (colon - h->buf));
                h->len -= cut;
                nl -= cut;
            }
        }
        h->scanned = (size_t) (nl + 1 - h->buf);
    }
    return h->scanned;
}

enum nw_http_result
nw__http_parse_head(nw_http *h)
{
    const char *start;
    size_t end;
    llhttp_errno_t e;

    if (h->state != NW_HTTP_HEAD) {
        return h->state == NW_HTTP_ERROR ? NW_HTTP_FAILED : NW_HTTP_HEAD_DONE;
    }
    if (!h->line_done) {
        enum nw_http_result r = parse_request_line(h);
        if (r != NW_HTTP_HEAD_DONE) {
            return r;
        }
    }
    end = h->len;
    if (h->limits->strip_header_spaces) {
        end = strip_spaces(h);
    }
    if (h->pos >= end) {
        return NW_HTTP_NEED_MORE;
    }
    start = h->buf + h->pos;
    e = llhttp_execute(&h->parser, start, end - h->pos);
    if (e == HPE_OK) {
        h->pos = end;
        return NW_HTTP_NEED_MORE;
    }
    if (e == HPE_PAUSED) {
        h->pos = (size_t) (llhttp_get_error_pos(&h->parser) - h->buf);
        h->head_end = h->pos;
        llhttp_resume(&h->parser);
        /* llhttp takes a bare LF for the empty line that ends the head */
        if (h->pos < 4 || memcmp(h->buf + h->pos - 4, "\r\n\r\n", 4) != 0) {
            nw__http_fail(h, 400, "Invalid header block: it must end with "
                                  "CRLF CRLF");
            return NW_HTTP_FAILED;
        }
        h->state = h->req.has_body ? NW_HTTP_BODY : NW_HTTP_DONE;
        return NW_HTTP_HEAD_DONE;
    }
    return failed(h, e);
}

static void
track_tail(nw_http *h, const char *from, const char *to)
{
    size_t n = (size_t) (to - from);

    if (n >= 4) {
        from = to - 4;
        n = 4;
    }
    for (size_t i = 0; i < n; i++) {
        h->tail = (h->tail << 8) | (unsigned char) from[i];
    }
}

size_t
nw__http_decode_body(nw_http *h, char *dst, size_t room)
{
    size_t feed = h->len - h->pos;
    llhttp_errno_t e;
    const char *start, *end;

    if (h->state != NW_HTTP_BODY || feed == 0 || room == 0) {
        return 0;
    }
    if (feed > room) {
        feed = room;
    }
    start = h->buf + h->pos;
    h->body_dst = dst;
    h->body_got = 0;
    e = llhttp_execute(&h->parser, start, feed);
    if (e == HPE_OK) {
        end = start + feed;
    } else if (e == HPE_PAUSED) {
        end = llhttp_get_error_pos(&h->parser);
    } else {
        failed(h, e);
        return 0;
    }
    h->pos = (size_t) (end - h->buf);
    h->body_total += h->body_got;
    if (h->limits->body > 0 && h->body_total > h->limits->body) {
        nw__http_fail(h, 413, "Request body is larger than "
                              "limit_request_body");
        return 0;
    }
    if (h->req.chunked) {
        track_tail(h, start, end);
        /* llhttp takes a bare LF after the last chunk or trailer */
        if (h->state == NW_HTTP_DONE && h->tail != CRLFCRLF) {
            nw__http_fail(h, 400, "Invalid chunked body: it must end with "
                                  "CRLF CRLF");
            return 0;
        }
    }
    return h->body_got;
}

/* ------------------------------------------------------------------------
 * Request targets
 */

static int
hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c |= 0x20;
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

void
nw__http_split_target(const char *t, size_t n, const char **path,
                      size_t *plen, const char **query, size_t *qlen)
{
    const char *end = t + n, *p = t, *q, *hash;

    if (n == 1 && t[0] == '*') {
        /* OPTIONS *: PATH_INFO '*', as Gunicorn (urlsplit) gives it */
        *path = t;
        *plen = 1;
        *query = end;
        *qlen = 0;
        return;
    }
    if (n > 0 && t[0] != '/') {
        const char *scheme = memchr(t, ':', n);
        if (scheme && scheme + 2 < end && scheme[1] == '/'
            && scheme[2] == '/') {
            const char *slash = memchr(scheme + 3, '/',
                                       (size_t) (end - scheme - 3));
            const char *qm = memchr(scheme + 3, '?',
                                    (size_t) (end - scheme - 3));
            if (slash == NULL || (qm != NULL && qm < slash)) {
                slash = qm ? qm : end;
            }
            p = slash;
        } else {
            p = end;
        }
    }
    hash = memchr(p, '#', (size_t) (end - p));
    if (hash != NULL) {
        end = hash;
    }
    q = memchr(p, '?', (size_t) (end - p));
    *path = p;
    *plen = (size_t) ((q ? q : end) - p);
    *query = q ? q + 1 : end;
    *qlen = q ? (size_t) (end - q - 1) : 0;
}

/* urllib.parse.unquote_to_bytes: invalid escapes stay as they are. */
size_t
nw__http_unquote(const char *s, size_t n, char *dst)
{
    size_t j = 0;

    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < n
            && (hi = hexval((unsigned char) s[i + 1])) >= 0
            && (lo = hexval((unsigned char) s[i + 2])) >= 0) {
            dst[j++] = (char) (hi * 16 + lo);
            i += 2;
        } else {
            dst[j++] = s[i];
        }
    }
    return j;
}
