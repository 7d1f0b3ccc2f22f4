/* HTTP/1.x request parsing: the request line by hand (Gunicorn's rules,
   any token method), the header block and the body by llhttp in strict
   mode, plus the checks llhttp leaves out.  The head is parsed in place in
   the connection's buffer (spans, no allocation per header); the body is
   decoded by llhttp straight into the reader's memory. */
#ifndef NW_HTTP_H
#define NW_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <llhttp.h>

/* 1 for the bytes of an RFC 9110 token (request and response header
   names, methods). */
extern const uint8_t nw__tchar[256];

/* s (n bytes) equals lower (no upper-case letters in it) in any case:
   what strncasecmp does for header names, without a call. */
static inline int
nw__lower_is(const char *s, const char *lower, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char) s[i], l = (unsigned char) lower[i];
        /* c | 0x20 is a lower-case letter only for that letter in either
           case; other bytes must be equal */
        if (l >= 'a' && l <= 'z' ? (c | 0x20) != l : c != l) {
            return 0;
        }
    }
    return 1;
}

typedef struct nw_span {
    uint32_t off;
    uint32_t len;
} nw_span;

/* Header names the core knows: looked up once while parsing, so neither
   the checks nor the environ compare strings again.  X(id, lower-case
   name, environ key). */
#define NW_HEADER_IDS(X)                                                      \
    X(HOST, "host", "HTTP_HOST")                                              \
    X(CONTENT_LENGTH, "content-length", "CONTENT_LENGTH")                     \
    X(CONTENT_TYPE, "content-type", "CONTENT_TYPE")                           \
    X(TRANSFER_ENCODING, "transfer-encoding", "HTTP_TRANSFER_ENCODING")       \
    X(EXPECT, "expect", "HTTP_EXPECT")                                        \
    X(CONNECTION, "connection", "HTTP_CONNECTION")                            \
    X(SCRIPT_NAME, "script_name", "HTTP_SCRIPT_NAME")                         \
    X(USER_AGENT, "user-agent", "HTTP_USER_AGENT")                            \
    X(ACCEPT, "accept", "HTTP_ACCEPT")                                        \
    X(ACCEPT_ENCODING, "accept-encoding", "HTTP_ACCEPT_ENCODING")             \
    X(ACCEPT_LANGUAGE, "accept-language", "HTTP_ACCEPT_LANGUAGE")             \
    X(ACCEPT_CHARSET, "accept-charset", "HTTP_ACCEPT_CHARSET")                \
    X(COOKIE, "cookie", "HTTP_COOKIE")                                        \
    X(REFERER, "referer", "HTTP_REFERER")                                     \
    X(CACHE_CONTROL, "cache-control", "HTTP_CACHE_CONTROL")                   \
    X(ORIGIN, "origin", "HTTP_ORIGIN")                                        \
    X(AUTHORIZATION, "authorization", "HTTP_AUTHORIZATION")                   \
    X(PRAGMA, "pragma", "HTTP_PRAGMA")                                        \
    X(KEEP_ALIVE, "keep-alive", "HTTP_KEEP_ALIVE")                            \
    X(X_FORWARDED_FOR, "x-forwarded-for", "HTTP_X_FORWARDED_FOR")             \
    X(X_FORWARDED_PROTO, "x-forwarded-proto", "HTTP_X_FORWARDED_PROTO")       \
    X(X_FORWARDED_HOST, "x-forwarded-host", "HTTP_X_FORWARDED_HOST")          \
    X(X_FORWARDED_PORT, "x-forwarded-port", "HTTP_X_FORWARDED_PORT")          \
    X(X_REAL_IP, "x-real-ip", "HTTP_X_REAL_IP")                               \
    X(X_REQUESTED_WITH, "x-requested-with", "HTTP_X_REQUESTED_WITH")          \
    X(X_REQUEST_ID, "x-request-id", "HTTP_X_REQUEST_ID")                      \
    X(X_CSRFTOKEN, "x-csrftoken", "HTTP_X_CSRFTOKEN")                         \
    X(IF_NONE_MATCH, "if-none-match", "HTTP_IF_NONE_MATCH")                   \
    X(IF_MODIFIED_SINCE, "if-modified-since", "HTTP_IF_MODIFIED_SINCE")       \
    X(UPGRADE_INSECURE_REQUESTS, "upgrade-insecure-requests",                 \
      "HTTP_UPGRADE_INSECURE_REQUESTS")                                       \
    X(SEC_FETCH_SITE, "sec-fetch-site", "HTTP_SEC_FETCH_SITE")                \
    X(SEC_FETCH_MODE, "sec-fetch-mode", "HTTP_SEC_FETCH_MODE")                \
    X(SEC_FETCH_DEST, "sec-fetch-dest", "HTTP_SEC_FETCH_DEST")                \
    X(SEC_FETCH_USER, "sec-fetch-user", "HTTP_SEC_FETCH_USER")                \
    X(DNT, "dnt", "HTTP_DNT")                                                 \
    X(TE, "te", "HTTP_TE")                                                    \
    X(UPGRADE, "upgrade", "HTTP_UPGRADE")                                     \
    X(RANGE, "range", "HTTP_RANGE")                                           \
    X(CONTENT_ENCODING, "content-encoding", "HTTP_CONTENT_ENCODING")

enum nw_header_id {
    NW_HDR_OTHER = 0,
#define X(id, name, key) NW_HDR_##id,
    NW_HEADER_IDS(X)
#undef X
    NW_HDR_COUNT
};

/* The header's lower-case name and environ key, by id (1..COUNT-1). */
extern const char *const nw__header_names[NW_HDR_COUNT];
extern const char *const nw__header_keys[NW_HDR_COUNT];

/* NW_HDR_* for a name (any case), NW_HDR_OTHER when it is not known. */
unsigned nw__header_id(const char *name, size_t len);

#define NW_HDRF_DROP 0x01u /* not put in the environ (header_map=drop) */

typedef struct nw_header {
    nw_span name;
    nw_span value; /* surrounding spaces and tabs excluded */
    uint16_t id;   /* NW_HDR_* */
    uint16_t flags;
} nw_header;

enum nw_header_map {
    NW_HEADER_MAP_DROP,      /* names with '_' are left out (default) */
    NW_HEADER_MAP_REFUSE,    /* ... or refused with 400 */
    NW_HEADER_MAP_DANGEROUS, /* ... or mapped like '-' */
};

/* What the parser accepts: the settings of Gunicorn's names, precomputed
   once per worker. */
typedef struct nw_http_limits {
    size_t request_line;  /* limit_request_line: bytes, CRLF excluded */
    unsigned fields;      /* limit_request_fields */
    size_t field_size;    /* limit_request_field_size: one header line;
                             SIZE_MAX for none (the setting's 0) */
    uint64_t body;        /* limit_request_body; 0 = unlimited (413) */
    unsigned header_map;  /* enum nw_header_map */
    unsigned permit_obsolete_folding : 1;
    unsigned strip_header_spaces : 1;
    unsigned permit_unconventional_method : 1;
    unsigned permit_unconventional_version : 1;
    unsigned casefold_method : 1;
    /* forwarder_headers: names with '_' a trusted peer may send; a "*"
       entry allows all */
    const char *const *forwarder_headers;
    size_t nforwarder_headers;
    /* secure_scheme_headers: name -> the value that means https */
    const char *const *scheme_names;
    const char *const *scheme_values;
    size_t nscheme;
} nw_http_limits;

/* The parser limits with Gunicorn's defaults and nothing else set. */
void nw__http_limits_default(nw_http_limits *l);

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

/* Methods with an interned REQUEST_METHOD; any other token is
   NW_METHOD_OTHER. */
enum nw_method {
    NW_METHOD_OTHER,
    NW_METHOD_GET,
    NW_METHOD_HEAD,
    NW_METHOD_POST,
    NW_METHOD_PUT,
    NW_METHOD_DELETE,
    NW_METHOD_OPTIONS,
    NW_METHOD_PATCH,
    NW_METHOD_CONNECT,
    NW_METHOD_TRACE,
    NW_METHOD_COUNT
};

/* wsgi.url_scheme as trusted secure_scheme_headers set it */
enum nw_scheme_hint {
    NW_SCHEME_NONE,
    NW_SCHEME_HTTP,
    NW_SCHEME_HTTPS,
};

typedef struct nw_request {
    nw_span method;
    nw_span url;
    nw_span script_name;  /* a SCRIPT_NAME header that passed header_map */
    uint8_t http_major;
    uint8_t http_minor;
    uint8_t method_id;    /* enum nw_method */
    uint8_t scheme;       /* enum nw_scheme_hint */
    unsigned keep_alive : 1;      /* the request allows it */
    unsigned chunked : 1;
    unsigned expect_continue : 1;
    unsigned has_body : 1;
    unsigned upgrade : 1;         /* Connection: upgrade; never reused */
    unsigned force_close : 1;     /* e.g. a gzip transfer coding */
    unsigned has_script_name : 1;
    int64_t content_length;       /* -1 without a Content-Length */
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
    size_t head_start;  /* where this request starts (after PROXY) */
    size_t head_end;
    size_t head_max;
    size_t scanned;     /* strip_header_spaces: lines rewritten up to here */
    /* why the request was refused */
    int error_status;
    const char *error_reason;
    /* during body decoding: where llhttp's on_body copies to */
    char *body_dst;
    size_t body_got;
    uint64_t body_total; /* decoded so far, against limits->body */
    uint32_t tail;       /* the last 4 bytes llhttp consumed (chunked) */
    /* header parsing */
    unsigned line_done : 1;
    unsigned in_field : 1; /* a header line's name has begun */
    unsigned value_started : 1;
    unsigned folded : 1;   /* its value continued on another line */
    unsigned trusted : 1; /* the peer is in forwarded_allow_ips */
    unsigned te_seen : 1;
    unsigned te_chunked : 1; /* chunked seen: nothing may follow it */
    unsigned hosts : 2;
    unsigned content_types : 2;
} nw_http;

void nw__http_init(nw_http *h, const nw_http_limits *limits);
void nw__http_free(nw_http *h);

/* Forget the last request, keeping unparsed (pipelined) bytes. */
void nw__http_reset(nw_http *h);

/* Forget everything: a new connection. */
void nw__http_clear(nw_http *h);

/* Room to read into: grows the buffer up to the head limit.  Returns the
   free bytes at buf + len, or 0 when the head is too large (the request is
   then refused with 431). */
size_t nw__http_room(nw_http *h);

/* Between requests, with nothing buffered: give the buffer back to a
   pool (nw__http_room takes one again).  Event mode, for idle
   connections. */
void nw__http_park(nw_http *h);

/* Parse the bytes in [pos, len) while in NW_HTTP_HEAD. */
enum nw_http_result nw__http_parse_head(nw_http *h);

/* Decode up to `room` body bytes from [pos, len) into dst.  Returns the
   bytes decoded; the state becomes NW_HTTP_DONE at the end of the body or
   NW_HTTP_ERROR on a framing error (or 413 past limit_request_body). */
size_t nw__http_decode_body(nw_http *h, char *dst, size_t room);

/* Refuse the request in hand: state NW_HTTP_ERROR, status and reason. */
void nw__http_fail(nw_http *h, int status, const char *reason);

/* The head's bytes, for building the environ. */
static inline const char *
nw__span_ptr(const nw_http *h, nw_span s)
{
    return h->buf + s.off;
}

/* The path and query of a request target: origin-form as is;
   absolute-form without its scheme and authority; '*' as itself; the
   fragment dropped. */
void nw__http_split_target(const char *t, size_t n, const char **path,
                           size_t *plen, const char **query, size_t *qlen);

/* Percent-decodes s[0, n) into dst (room for n bytes), as Python's
   urllib.parse.unquote_to_bytes: invalid escapes stay.  Returns the
   length written. */
size_t nw__http_unquote(const char *s, size_t n, char *dst);

#endif
