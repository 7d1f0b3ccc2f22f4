/* HTTP/1.x request parsing over llhttp: the head is parsed in place in the
   connection's buffer (spans, no allocation per header); the body is
   decoded by llhttp straight into the reader's memory. */
#ifndef NW_HTTP_H
#define NW_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <llhttp.h>

typedef struct nw_span {
    uint32_t off;
    uint32_t len;
} nw_span;

typedef struct nw_header {
    nw_span name;
    nw_span value;
} nw_header;

typedef struct nw_http_limits {
    size_t request_line; /* bytes, CRLF excluded */
    unsigned fields;     /* header fields */
    size_t field_size;   /* bytes of one "name: value" line */
} nw_http_limits;

enum nw_http_state {
    NW_HTTP_HEAD,  /* reading the request line and headers */
    NW_HTTP_BODY,  /* head parsed, body being read */
    NW_HTTP_DONE,  /* whole message read */
    NW_HTTP_ERROR, /* refused: status and reason say why */
};

/* What parsing more bytes gave. */
enum nw_http_result {
    NW_HTTP_NEED_MORE,
    NW_HTTP_HEAD_DONE,
    NW_HTTP_FAILED,
};

typedef struct nw_request {
    nw_span method;
    nw_span url;
    uint8_t http_major;
    uint8_t http_minor;
    uint8_t method_id; /* llhttp_method_t */
    unsigned keep_alive : 1;
    unsigned chunked : 1;
    unsigned expect_continue : 1;
    unsigned has_body : 1;
    int64_t content_length; /* -1 without a Content-Length */
    nw_header *headers;
    unsigned nheaders;
} nw_request;

typedef struct nw_http {
    llhttp_t parser;
    nw_request req;
    const nw_http_limits *limits;
    unsigned max_headers;
    enum nw_http_state state;
    /* the head, then the body as it arrives: [pos, len) is unparsed */
    char *buf;
    size_t cap;
    size_t len;
    size_t pos;
    size_t head_end;
    size_t head_max;
    /* why the request was refused */
    int error_status;
    const char *error_reason;
    /* during body decoding: where llhttp's on_body copies to */
    char *body_dst;
    size_t body_got;
    /* header parsing */
    unsigned in_value : 1;
} nw_http;

void nw__http_init(nw_http *h, const nw_http_limits *limits);
void nw__http_free(nw_http *h);

/* Forget the last request, keeping unparsed (pipelined) bytes. */
void nw__http_reset(nw_http *h);

/* Room to read into: grows the buffer up to the head limit.  Returns the
   free bytes at buf + len, or 0 when the head is too large (the request is
   then refused with 431). */
size_t nw__http_room(nw_http *h);

/* Parse the bytes in [pos, len) while in NW_HTTP_HEAD. */
enum nw_http_result nw__http_parse_head(nw_http *h);

/* Decode up to `room` body bytes from [pos, len) into dst.  Returns the
   bytes decoded; the state becomes NW_HTTP_DONE at the end of the body or
   NW_HTTP_ERROR on a framing error. */
size_t nw__http_decode_body(nw_http *h, char *dst, size_t room);

/* The head's bytes, for building the environ. */
static inline const char *
nw__span_ptr(const nw_http *h, nw_span s)
{
    return h->buf + s.off;
}

#endif
