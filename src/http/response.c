#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <narwhal/api.h>

#include "http/http.h"
#include "base/memory.h"
#include "http/response.h"

void
nw__resp_init(nw_resp *r)
{
    memset(r, 0, sizeof(*r));
    r->content_length = -1;
}

void
nw__resp_free(nw_resp *r)
{
    free(r->status_text);
    free(r->headers);
    memset(r, 0, sizeof(*r));
}

void
nw__resp_reset(nw_resp *r)
{
    char *status_text = r->status_text;
    size_t status_cap = r->status_cap;
    char *headers = r->headers;
    size_t cap = r->headers_cap;

    memset(r, 0, sizeof(*r));
    r->status_text = status_text;
    r->status_cap = status_cap;
    r->headers = headers;
    r->headers_cap = cap;
    r->content_length = -1;
}

int
nw__resp_set_status(nw_resp *r, const char *status, size_t len, char *err,
                    size_t errlen)
{
    if (len < 3 || status[0] < '1' || status[0] > '9' || status[1] < '0'
        || status[1] > '9' || status[2] < '0' || status[2] > '9'
        || (len > 3 && status[3] != ' ')) {
        snprintf(err, errlen,
                 "invalid status %.*s: it must start with a three-digit "
                 "code, e.g. '200 OK'",
                 (int) (len > 64 ? 64 : len), status);
        return NW_ERROR;
    }
    for (size_t i = 3; i < len; i++) {
        unsigned char c = (unsigned char) status[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            snprintf(err, errlen,
                     "invalid status: control character 0x%02x in it", c);
            return NW_ERROR;
        }
    }
    r->status = (status[0] - '0') * 100 + (status[1] - '0') * 10
                + (status[2] - '0');
    if (len + 1 > r->status_cap) {
        r->status_cap = len + 1 < 64 ? 64 : len + 1;
        r->status_text = nw__xrealloc(r->status_text, r->status_cap);
    }
    memcpy(r->status_text, status, len);
    r->status_text[len] = '\0';
    r->status_len = len;
    return NW_OK;
}

/* Names the server treats specially, told apart by length first. */
static enum nw_header_kind
special(const char *name, size_t n)
{
#define IS(s) nw__lower_is(name, s, n)
    switch (n) {
    case 2: return IS("te") ? NW_HK_HOP : NW_HK_PLAIN;
    case 4: return IS("date") ? NW_HK_HOP : NW_HK_PLAIN;
    case 6: return IS("server") ? NW_HK_HOP : NW_HK_PLAIN;
    case 7: return IS("upgrade") ? NW_HK_UPGRADE : NW_HK_PLAIN;
    case 8: return IS("trailers") ? NW_HK_HOP : NW_HK_PLAIN;
    case 10:
        return IS("connection") ? NW_HK_CONNECTION
               : IS("keep-alive") ? NW_HK_HOP
                                  : NW_HK_PLAIN;
    case 14: return IS("content-length") ? NW_HK_CONTENT_LENGTH : NW_HK_PLAIN;
    case 17: return IS("transfer-encoding") ? NW_HK_HOP : NW_HK_PLAIN;
    case 18: return IS("proxy-authenticate") ? NW_HK_HOP : NW_HK_PLAIN;
    case 19: return IS("proxy-authorization") ? NW_HK_HOP : NW_HK_PLAIN;
    default: return NW_HK_PLAIN;
    }
#undef IS
}

int
nw__resp_header_kind(const char *name, size_t nlen, char *err, size_t errlen)
{
    if (nlen == 0) {
        snprintf(err, errlen, "empty header name");
        return NW_ERROR;
    }
    for (size_t i = 0; i < nlen; i++) {
        if (!nw__tchar[(unsigned char) name[i]]) {
            snprintf(err, errlen,
                     "invalid header name %.*s: byte 0x%02x is not allowed "
                     "in a header name",
                     (int) (nlen > 64 ? 64 : nlen), name,
                     (unsigned char) name[i]);
            return NW_ERROR;
        }
    }
    return (int) special(name, nlen);
}

int
nw__resp_add_header(nw_resp *r, const char *name, size_t nlen,
                    const char *value, size_t vlen, char *err, size_t errlen)
{
    int kind = nw__resp_header_kind(name, nlen, err, errlen);

    if (kind < 0) {
        return NW_ERROR;
    }
    return nw__resp_add_header_kind(r, name, nlen,
                                    (enum nw_header_kind) kind, value, vlen,
                                    err, errlen);
}

int
nw__resp_add_header_kind(nw_resp *r, const char *name, size_t nlen,
                         enum nw_header_kind kind, const char *value,
                         size_t vlen, char *err, size_t errlen)
{
    size_t need;
    char *out;

    /* surrounding SP and HTAB are not part of the value */
    while (vlen > 0 && (value[0] == ' ' || value[0] == '\t')) {
        value++;
        vlen--;
    }
    while (vlen > 0 && (value[vlen - 1] == ' ' || value[vlen - 1] == '\t')) {
        vlen--;
    }
    for (size_t i = 0; i < vlen; i++) {
        unsigned char c = (unsigned char) value[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            snprintf(err, errlen,
                     "invalid value for header %.*s: control byte 0x%02x "
                     "(CR, LF and NUL can split a response)",
                     (int) (nlen > 64 ? 64 : nlen), name, c);
            return NW_ERROR;
        }
    }
    switch (kind) {
    case NW_HK_CONTENT_LENGTH: {
        int64_t v = 0;
        if (vlen == 0 || vlen > 18) {
            snprintf(err, errlen, "invalid Content-Length %.*s",
                     (int) (vlen > 32 ? 32 : vlen), value);
            return NW_ERROR;
        }
        for (size_t i = 0; i < vlen; i++) {
            if (value[i] < '0' || value[i] > '9') {
                snprintf(err, errlen, "invalid Content-Length %.*s",
                         (int) (vlen > 32 ? 32 : vlen), value);
                return NW_ERROR;
            }
            v = v * 10 + (value[i] - '0');
        }
        if (r->content_length >= 0) {
            snprintf(err, errlen, "Content-Length given twice");
            return NW_ERROR;
        }
        r->content_length = v;
        r->cl_off = r->headers_len;
        r->cl_len = nlen + 2 + vlen + 2;
        break;
    }
    case NW_HK_CONNECTION:
        if (vlen == 7 && nw__lower_is(value, "upgrade", 7)) {
            r->upgrade = 1;
        }
        return NW_OK;
    case NW_HK_UPGRADE:
        if (!(vlen == 9 && nw__lower_is(value, "websocket", 9))) {
            return NW_OK;
        }
        break;
    case NW_HK_HOP:
        /* Gunicorn's util.hop_headers: the server owns these */
        return NW_OK;
    case NW_HK_PLAIN:
        break;
    }
    need = r->headers_len + nlen + 2 + vlen + 2;
    if (need > r->headers_cap) {
        r->headers_cap = need < 512 ? 512 : need * 2;
        r->headers = nw__xrealloc(r->headers, r->headers_cap);
    }
    out = r->headers + r->headers_len;
    memcpy(out, name, nlen);
    out += nlen;
    *out++ = ':';
    *out++ = ' ';
    memcpy(out, value, vlen);
    out += vlen;
    *out++ = '\r';
    *out = '\n';
    r->headers_len = need;
    return NW_OK;
}

void
nw__resp_clear_headers(nw_resp *r)
{
    r->headers_len = 0;
    r->content_length = -1;
    r->upgrade = 0;
}

void
nw__resp_frame(nw_resp *r, int http11, int is_head, int keep_alive)
{
    r->no_body = is_head || r->status < 200 || r->status == 204
                 || r->status == 304;
    if ((r->status < 200 || r->status == 204) && r->content_length >= 0) {
        /* RFC 9110 8.6: never on 1xx and 204 */
        memmove(r->headers + r->cl_off, r->headers + r->cl_off + r->cl_len,
                r->headers_len - r->cl_off - r->cl_len);
        r->headers_len -= r->cl_len;
        r->content_length = -1;
    }
    r->chunked = 0;
    /* after Connection: upgrade the bytes are another protocol's */
    r->must_close = !keep_alive || r->upgrade;
    if (r->content_length < 0 && !r->no_body) {
        if (http11) {
            r->chunked = 1;
        } else {
            /* HTTP/1.0 without a length: the close delimits the body */
            r->must_close = 1;
        }
    }
}

static size_t
append(char *out, size_t cap, size_t at, const char *s, size_t n)
{
    if (n > 0 && at + n <= cap) {
        memcpy(out + at, s, n);
    }
    return at + n;
}

/* "\r\nServer: narwhal\r\nDate: ...\r\n": what follows the status line's
   reason in every head, rebuilt once a second. */
#define SERVER_LINE "\r\nServer: narwhal\r\n"
static const char *
server_date_lines(size_t *len)
{
    static time_t last = (time_t) -1;
    static char lines[80] = SERVER_LINE;
    static size_t lines_len;
    time_t now = time(NULL);

    if (now != last) {
        struct tm tm;
        gmtime_r(&now, &tm);
        lines_len = sizeof(SERVER_LINE) - 1
                    + strftime(lines + sizeof(SERVER_LINE) - 1,
                               sizeof(lines) - sizeof(SERVER_LINE) + 1,
                               "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
        last = now;
    }
    *len = lines_len;
    return lines;
}

size_t
nw__resp_head(const nw_resp *r, int http_major, int http_minor, char *out,
              size_t cap)
{
    size_t n = 0, dlen;
    const char *date = server_date_lines(&dlen);
#define LINE(s) s, sizeof(s) - 1
    static const struct {
        const char *s;
        size_t n;
    } conns[] = {{LINE("Connection: keep-alive\r\n")},
                 {LINE("Connection: close\r\n")},
                 {LINE("Connection: upgrade\r\n")}};
#undef LINE
    unsigned conn = r->upgrade ? 2 : r->must_close ? 1 : 0;

    if (http_major == 1 && http_minor <= 1) {
        n = append(out, cap, n, http_minor ? "HTTP/1.1 " : "HTTP/1.0 ", 9);
    } else {
        char line[32];
        n = append(out, cap, n, line,
                   (size_t) snprintf(line, sizeof(line), "HTTP/%d.%d ",
                                     http_major, http_minor));
    }
    n = append(out, cap, n, r->status_text, r->status_len);
    n = append(out, cap, n, date, dlen);
    n = append(out, cap, n, conns[conn].s, conns[conn].n);
    if (r->chunked) {
        n = append(out, cap, n, "Transfer-Encoding: chunked\r\n", 28);
    }
    n = append(out, cap, n, r->headers, r->headers_len);
    n = append(out, cap, n, "\r\n", 2);
    return n;
}

size_t
nw__resp_chunk_header(size_t n, char out[20])
{
    static const char hex[] = "0123456789abcdef";
    char tmp[16];
    size_t i = 0, j = 0;

    do {
        tmp[i++] = hex[n & 15];
        n >>= 4;
    } while (n != 0);
    while (i > 0) {
        out[j++] = tmp[--i];
    }
    out[j++] = '\r';
    out[j++] = '\n';
    return j;
}


const char *
nw__status_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Request Entity Too Large";
    case 414: return "Request-URI Too Long";
    case 417: return "Expectation Failed";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
    }
}

/* HTML-escape into out; returns bytes written. */
static size_t
escape_html(const char *s, char *out, size_t cap)
{
    size_t j = 0;

    for (; s && *s && j + 6 < cap; s++) {
        const char *rep = NULL;
        switch (*s) {
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '&': rep = "&amp;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&#x27;"; break;
        }
        if (rep) {
            size_t n = strlen(rep);
            memcpy(out + j, rep, n);
            j += n;
        } else {
            out[j++] = *s;
        }
    }
    out[j] = '\0';
    return j;
}

size_t
nw__resp_error(int status, const char *message, char *out, size_t cap)
{
    const char *reason = nw__status_reason(status);
    char msg[512], body[768];
    int blen, n;

    escape_html(message, msg, sizeof(msg));
    blen = snprintf(body, sizeof(body),
                    "<html><head><title>%s</title></head><body><h1><p>%s"
                    "</p></h1>%s</body></html>",
                    reason, reason, msg);
    if (blen < 0 || (size_t) blen >= sizeof(body)) {
        blen = (int) strlen(body);
    }
    n = snprintf(out, cap,
                 "HTTP/1.1 %d %s\r\nConnection: close\r\n"
                 "Content-Type: text/html\r\nContent-Length: %d\r\n\r\n%s",
                 status, reason, blen, body);
    if (n < 0) {
        return 0;
    }
    return (size_t) n < cap ? (size_t) n : cap - 1;
}
