#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <narwhal/api.h>

#include "http.h"
#include "memory.h"

#define INITIAL_BUF 8192
#define BODY_ROOM 16384

/* llhttp hands out pointers into the bytes given to llhttp_execute, which
   are always in h->buf; a span is their offset from buf, so growing the
   buffer never invalidates it. */
static int
span_add(nw_http *h, nw_span *s, const char *at, size_t n)
{
    uint32_t off = (uint32_t) (at - h->buf);

    if (s->len == 0) {
        s->off = off;
    }
    s->len += (uint32_t) n;
    return 0;
}

static int
refuse(nw_http *h, int status, const char *reason)
{
    h->error_status = status;
    h->error_reason = reason;
    llhttp_set_error_reason(&h->parser, reason);
    return HPE_USER;
}

static int
on_method(llhttp_t *p, const char *at, size_t n)
{
    nw_http *h = p->data;
    span_add(h, &h->req.method, at, n);
    return 0;
}

static int
on_url(llhttp_t *p, const char *at, size_t n)
{
    nw_http *h = p->data;
    span_add(h, &h->req.url, at, n);
    /* method, SP, target, SP, "HTTP/1.1" */
    if (h->req.method.len + 1 + h->req.url.len + 9 > h->limits->request_line) {
        return refuse(h, 414, "Request Line is too large");
    }
    return 0;
}

static int
on_header_field(llhttp_t *p, const char *at, size_t n)
{
    nw_http *h = p->data;
    nw_header *hd;

    if (h->state != NW_HTTP_HEAD) {
        return 0; /* a trailer: parsed by llhttp, ignored */
    }
    if (h->in_value || h->req.nheaders == 0) {
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
        h->in_value = 0;
    }
    hd = &h->req.headers[h->req.nheaders - 1];
    span_add(h, &hd->name, at, n);
    if (hd->name.len > h->limits->field_size) {
        return refuse(h, 431, "header field is too large");
    }
    return 0;
}

static int
on_header_value(llhttp_t *p, const char *at, size_t n)
{
    nw_http *h = p->data;
    nw_header *hd;

    if (h->state != NW_HTTP_HEAD) {
        return 0;
    }
    hd = &h->req.headers[h->req.nheaders - 1];
    h->in_value = 1;
    span_add(h, &hd->value, at, n);
    /* name ": " value CRLF */
    if (hd->name.len + 2 + hd->value.len + 2 > h->limits->field_size) {
        return refuse(h, 431, "header field is too large");
    }
    return 0;
}

static int
on_header_value_complete(llhttp_t *p)
{
    nw_http *h = p->data;
    nw_header *hd;
    const char *name, *value;

    if (h->state != NW_HTTP_HEAD || h->req.nheaders == 0) {
        return 0;
    }
    h->in_value = 1; /* an empty value gets no on_header_value call */
    hd = &h->req.headers[h->req.nheaders - 1];
    name = h->buf + hd->name.off;
    value = h->buf + hd->value.off;
    /* llhttp folds "\r\n " continuation lines into the value; RFC 9112
       obsoletes them and a proxy may split the header differently */
    if (memchr(value, '\n', hd->value.len) != NULL
        || memchr(value, '\r', hd->value.len) != NULL) {
        return refuse(h, 400, "obsolete line folding in a header");
    }
    if (hd->name.len == 6 && strncasecmp(name, "expect", 6) == 0) {
        if (hd->value.len == 12 && strncasecmp(value, "100-continue", 12) == 0) {
            h->req.expect_continue = 1;
        } else {
            return refuse(h, 417, "unsupported Expect");
        }
    }
    return 0;
}

static int
on_headers_complete(llhttp_t *p)
{
    nw_http *h = p->data;
    nw_request *r = &h->req;

    r->http_major = p->http_major;
    r->http_minor = p->http_minor;
    r->method_id = p->method;
    r->keep_alive = llhttp_should_keep_alive(p) ? 1 : 0;
    r->chunked = (p->flags & F_CHUNKED) ? 1 : 0;
    r->content_length = (p->flags & F_CONTENT_LENGTH)
                            ? (int64_t) p->content_length
                            : -1;
    r->has_body = r->chunked || r->content_length > 0;
    if (r->expect_continue && r->http_major == 1 && r->http_minor == 0) {
        r->expect_continue = 0; /* HTTP/1.0 has no 100 Continue */
    }
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
nw__http_init(nw_http *h, const nw_http_limits *limits)
{
    if (parser_settings.on_message_complete == NULL) {
        llhttp_settings_init(&parser_settings);
        parser_settings.on_method = on_method;
        parser_settings.on_url = on_url;
        parser_settings.on_header_field = on_header_field;
        parser_settings.on_header_value = on_header_value;
        parser_settings.on_header_value_complete = on_header_value_complete;
        parser_settings.on_headers_complete = on_headers_complete;
        parser_settings.on_body = on_body;
        parser_settings.on_message_complete = on_message_complete;
    }
    memset(h, 0, sizeof(*h));
    h->limits = limits;
    h->head_max = limits->request_line + 2
                  + (size_t) limits->fields * (limits->field_size + 2) + 2;
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

    if (h->pos > 0) {
        memmove(h->buf, h->buf + h->pos, h->len - h->pos);
        h->len -= h->pos;
        h->pos = 0;
    }
    memset(&h->req, 0, sizeof(h->req));
    h->req.headers = headers;
    h->req.content_length = -1;
    h->state = NW_HTTP_HEAD;
    h->head_end = 0;
    h->error_status = 0;
    h->error_reason = NULL;
    h->in_value = 0;
    /* Each request starts from a fresh parser state: keep-alive is decided
       here, not by llhttp, and a paused parser needs no resume. */
    llhttp_reset(&h->parser);
}

size_t
nw__http_room(nw_http *h)
{
    size_t want;

    if (h->state == NW_HTTP_HEAD) {
        if (h->len < h->cap) {
            return h->cap - h->len;
        }
        if (h->cap >= h->head_max) {
            return 0;
        }
        want = h->cap * 2 < h->head_max ? h->cap * 2 : h->head_max;
    } else {
        /* Body bytes already decoded are dropped: the head stays put (the
           access log and hooks still read it). */
        if (h->pos == h->len) {
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
    h->state = NW_HTTP_ERROR;
    if (h->error_status == 0) {
        h->error_status = 400;
        h->error_reason = llhttp_get_error_reason(&h->parser);
        if (h->error_reason == NULL) {
            h->error_reason = llhttp_errno_name(e);
        }
        if (e == HPE_INVALID_TRANSFER_ENCODING
            && (h->parser.flags & F_TRANSFER_ENCODING)
            && !(h->parser.flags & F_CONTENT_LENGTH)) {
            h->error_status = 501;
        }
    }
    return NW_HTTP_FAILED;
}

enum nw_http_result
nw__http_parse_head(nw_http *h)
{
    const char *start = h->buf + h->pos;
    llhttp_errno_t e;

    if (h->state != NW_HTTP_HEAD) {
        return h->state == NW_HTTP_ERROR ? NW_HTTP_FAILED : NW_HTTP_HEAD_DONE;
    }
    if (h->pos == h->len) {
        return NW_HTTP_NEED_MORE;
    }
    e = llhttp_execute(&h->parser, start, h->len - h->pos);
    if (e == HPE_OK) {
        h->pos = h->len;
        if (h->len >= h->head_max) {
            h->state = NW_HTTP_ERROR;
            h->error_status = h->req.nheaders ? 431 : 414;
            h->error_reason = "request head is too large";
            return NW_HTTP_FAILED;
        }
        return NW_HTTP_NEED_MORE;
    }
    if (e == HPE_PAUSED) {
        h->pos = (size_t) (llhttp_get_error_pos(&h->parser) - h->buf);
        h->head_end = h->pos;
        llhttp_resume(&h->parser);
        /* A request without a body is complete; the parser is reset
           before the next one (nw__http_reset). */
        h->state = h->req.has_body ? NW_HTTP_BODY : NW_HTTP_DONE;
        return NW_HTTP_HEAD_DONE;
    }
    return failed(h, e);
}

size_t
nw__http_decode_body(nw_http *h, char *dst, size_t room)
{
    size_t feed = h->len - h->pos;
    llhttp_errno_t e;
    const char *start;

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
        h->pos += feed;
    } else if (e == HPE_PAUSED) {
        h->pos = (size_t) (llhttp_get_error_pos(&h->parser) - h->buf);
    } else {
        failed(h, e);
    }
    return h->body_got;
}
