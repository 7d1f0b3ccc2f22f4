/* The response head and body framing, independent of Python: status and
   header validation, hop-by-hop filtering, Content-Length and chunked
   framing, the cached Date header, canned error responses. */
#ifndef NW_RESPONSE_H
#define NW_RESPONSE_H

#include <stddef.h>
#include <stdint.h>

typedef struct nw_resp {
    int status;              /* numeric status, 0 until start_response */
    char *status_text;       /* "200 OK", as the app gave it */
    size_t status_len;
    size_t status_cap;       /* kept across requests: no realloc each */
    char *headers;           /* "Name: value\r\n" ..., validated */
    size_t headers_len;
    size_t headers_cap;
    int64_t content_length;  /* from the app; -1 without */
    size_t cl_off;           /* its line in headers, to drop on 1xx/204 */
    size_t cl_len;
    uint64_t sent;           /* body bytes written, framing excluded */
    unsigned chunked : 1;    /* body framed in chunks */
    unsigned no_body : 1;    /* HEAD, 1xx, 204, 304: body bytes dropped */
    unsigned must_close : 1; /* connection closes after this response */
    unsigned headers_sent : 1;
    unsigned upgrade : 1;    /* Connection: upgrade from the app */
    unsigned body_dropped : 1; /* no_body, and the app gave bytes */
} nw_resp;

void nw__resp_init(nw_resp *r);
void nw__resp_free(nw_resp *r);
/* Ready for the next request; keeps the buffers. */
void nw__resp_reset(nw_resp *r);

/* "NNN Reason": three digits, then a space or the end.  NW_ERROR and one
   sentence in err otherwise. */
int nw__resp_set_status(nw_resp *r, const char *status, size_t len,
                        char *err, size_t errlen);

/* Validate and add one header from the app: a token name, a value without
   CR, LF, NUL or other control bytes.  Hop-by-hop headers (and Server and
   Date, which narwhal writes itself) are dropped as Gunicorn drops them. */
int nw__resp_add_header(nw_resp *r, const char *name, size_t nlen,
                        const char *value, size_t vlen, char *err,
                        size_t errlen);

/* What the server makes of a header name, which does not depend on its
   value: nw__resp_add_header is nw__resp_header_kind (NW_ERROR for a name
   that is not a token) then nw__resp_add_header_kind, so that a caller may
   keep the kind of a name it sees again. */
enum nw_header_kind {
    NW_HK_PLAIN,
    NW_HK_CONTENT_LENGTH,
    NW_HK_CONNECTION,
    NW_HK_UPGRADE,
    NW_HK_HOP, /* Gunicorn's util.hop_headers and what narwhal writes */
};
int nw__resp_header_kind(const char *name, size_t nlen, char *err,
                         size_t errlen);
int nw__resp_add_header_kind(nw_resp *r, const char *name, size_t nlen,
                             enum nw_header_kind kind, const char *value,
                             size_t vlen, char *err, size_t errlen);

/* Forget the app's headers (start_response called again with exc_info). */
void nw__resp_clear_headers(nw_resp *r);

/* Decide the framing once the head is about to be written: HEAD, 1xx, 204
   and 304 carry no body (Content-Length is dropped on 1xx and 204, kept on
   HEAD and 304); without a length, HTTP/1.1 is chunked and HTTP/1.0 ends
   with the close. */
void nw__resp_frame(nw_resp *r, int http11, int is_head, int keep_alive);

/* Write the whole head into out (at most cap bytes).  Returns its length,
   or the length needed when it does not fit. */
size_t nw__resp_head(const nw_resp *r, int http_major, int http_minor,
                     char *out, size_t cap);

/* "1a2b\r\n" for a chunk of n bytes; returns its length (at most 18). */
size_t nw__resp_chunk_header(size_t n, char out[20]);

/* A complete canned error response (Gunicorn's util.write_error format).
   Returns its length; out must hold 1024 bytes. */
size_t nw__resp_error(int status, const char *message, char *out,
                      size_t cap);

const char *nw__status_reason(int status);

#endif
