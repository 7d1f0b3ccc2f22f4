/* The access log (Gunicorn's glogging.Logger.access and its atoms). */
#include "config.h"

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "accesslog/accesslog.h"
#include "conn/conn.h"
#include "hooks/hooks.h"
#include "log/log.h"
#include "base/memory.h"

enum {
    OP_LIT,
    OP_ATOM,
    OP_REQ_HEADER,  /* {name}i */
    OP_RESP_HEADER, /* {name}o */
    OP_ENV,         /* {name}e */
    OP_MISSING,     /* any other name: '-' */
};

const char nw__access_json_format[] =
    "{\"remote_addr\": \"%(h)s\", \"user\": \"%(u)s\", \"time\": \"%(t)s\", "
    "\"request\": \"%(r)s\", \"method\": \"%(m)s\", \"path\": \"%(U)s\", "
    "\"query\": \"%(q)s\", \"protocol\": \"%(H)s\", \"status\": %(s)s, "
    "\"bytes\": %(B)s, \"referer\": \"%(f)s\", \"user_agent\": \"%(a)s\", "
    "\"duration_us\": %(D)s, \"pid\": \"%(p)s\"}";

static const char atoms[] = "hlutrmUqHsBbfaTMDLp";
static const char int_atoms[] = "BTMD";

/* ------------------------------------------------------------------------
 * Compiling
 */

static uint32_t
pool_add(char **pool, size_t *len, size_t *cap, const char *p, size_t n,
         int lower)
{
    uint32_t at = (uint32_t) *len;

    if (*len + n + 1 > *cap) {
        *cap = (*len + n + 1) * 2;
        *pool = nw__xrealloc(*pool, *cap);
    }
    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        (*pool)[*len + i] = lower && ch >= 'A' && ch <= 'Z' ? (char) (ch + 32)
                                                            : ch;
    }
    *len += n;
    (*pool)[*len] = '\0';
    return at;
}

static nw_alop *
new_op(nw_accesslog *al, unsigned *cap)
{
    if (al->nops == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        al->ops = nw__xrealloc(al->ops, *cap * sizeof(nw_alop));
    }
    memset(&al->ops[al->nops], 0, sizeof(nw_alop));
    al->ops[al->nops].prec = -1;
    return &al->ops[al->nops++];
}

int
nw__accesslog_compile(nw_accesslog *al, const char *fmt, int json, char *err,
                      size_t errlen)
{
    size_t plen = 0, pcap = 64;
    unsigned cap = 0;
    const char *p = fmt;

    memset(al, 0, sizeof(*al));
    al->json = json;
    al->pool = nw__xmalloc(pcap);
    al->pool[0] = '\0';
    while (*p) {
        const char *pct = strchr(p, '%');
        const char *name, *q;
        nw_alop *op;
        int depth;
        size_t nlen;

        if (pct != p) {
            size_t n = pct ? (size_t) (pct - p) : strlen(p);
            op = new_op(al, &cap);
            op->kind = OP_LIT;
            op->len = (uint32_t) n;
            op->off = pool_add(&al->pool, &plen, &pcap, p, n, 0);
            p += n;
            continue;
        }
        if (p[1] == '%') {
            op = new_op(al, &cap);
            op->kind = OP_LIT;
            op->len = 1;
            op->off = pool_add(&al->pool, &plen, &pcap, "%", 1, 0);
            p += 2;
            continue;
        }
        if (p[1] != '(') {
            snprintf(err, errlen,
                     "'%.8s' at offset %zu is not an atom: write "
                     "%%(NAME)s (e.g. %%(h)s), or %%%% for a '%%'",
                     p, (size_t) (p - fmt));
            goto fail;
        }
        /* Python's %: the key runs to the matching parenthesis */
        name = p + 2;
        depth = 1;
        for (q = name; *q && depth > 0; q++) {
            depth += *q == '(' ? 1 : *q == ')' ? -1 : 0;
        }
        if (depth != 0) {
            snprintf(err, errlen,
                     "'%.16s' at offset %zu has no closing parenthesis",
                     p, (size_t) (p - fmt));
            goto fail;
        }
        nlen = (size_t) (q - 1 - name);
        op = new_op(al, &cap);
        while (*q == '-' || *q == '0' || *q == ' ' || *q == '+'
               || *q == '#') {
            op->left |= *q == '-';
            op->zero |= *q == '0';
            q++;
        }
        while (*q >= '0' && *q <= '9' && op->width < 100000) {
            op->width = op->width * 10 + (*q++ - '0');
        }
        if (*q == '.') {
            op->prec = 0;
            q++;
            while (*q >= '0' && *q <= '9' && op->prec < 100000) {
                op->prec = op->prec * 10 + (*q++ - '0');
            }
        }
        while (*q == 'h' || *q == 'l' || *q == 'L') {
            q++; /* length modifiers: Python ignores them */
        }
        if (*q == 'i' || *q == 'u') {
            op->conv = 'd';
        } else if (*q == 's' || *q == 'd') {
            op->conv = *q;
        } else {
            snprintf(err, errlen,
                     "'%.*s' at offset %zu: use the s conversion "
                     "(%%(NAME)s), or d for B, T, M or D",
                     (int) (q - p + (*q != '\0')), p, (size_t) (p - fmt));
            goto fail;
        }
        q++;
        if (nlen == 1 && strchr(atoms, name[0]) != NULL) {
            op->kind = OP_ATOM;
            op->atom = name[0];
        } else if (nlen >= 3 && name[0] == '{' && name[nlen - 2] == '}'
                   && strchr("ioe", name[nlen - 1]) != NULL) {
            char tail = name[nlen - 1];
            op->kind = tail == 'i'   ? OP_REQ_HEADER
                       : tail == 'o' ? OP_RESP_HEADER
                                     : OP_ENV;
            op->len = (uint32_t) (nlen - 3);
            /* SafeAtoms looks {...} up lower-cased; environ keys keep
               their case here and are matched both ways */
            op->off = pool_add(&al->pool, &plen, &pcap, name + 1, nlen - 3,
                               tail != 'e');
            if (tail == 'i') {
                op->hdr_id = nw__header_id(name + 1, nlen - 3);
            }
        } else {
            op->kind = OP_MISSING;
        }
        if (op->conv == 'd'
            && !(op->kind == OP_ATOM && strchr(int_atoms, op->atom))) {
            snprintf(err, errlen,
                     "'%.*s' at offset %zu: %%d takes a number, and only B, "
                     "T, M and D are numbers; use s",
                     (int) (q - p), p, (size_t) (p - fmt));
            goto fail;
        }
        p = q;
    }
    return NW_OK;

fail:
    nw__accesslog_free(al);
    return NW_ERROR;
}

void
nw__accesslog_free(nw_accesslog *al)
{
    for (unsigned i = 0; i < al->nops; i++) {
        for (int k = 0; k < 3; k++) {
            if (al->ops[i].keys[k] != NULL && Py_IsInitialized()) {
                Py_DECREF(al->ops[i].keys[k]);
            }
        }
    }
    free(al->ops);
    free(al->pool);
    memset(al, 0, sizeof(*al));
}

/* ------------------------------------------------------------------------
 * Rendering
 */

typedef struct buf {
    char *p;
    size_t len;
    size_t cap;
} buf;

static buf line;

static void
reserve(buf *b, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 256;
        b->p = nw__xrealloc(b->p, b->cap);
    }
}

static void
put(buf *b, const char *p, size_t n)
{
    reserve(b, n);
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void
put_u64(buf *b, uint64_t v)
{
    char tmp[24];
    int i = (int) sizeof(tmp);

    do {
        tmp[--i] = (char) ('0' + v % 10);
        v /= 10;
    } while (v != 0);
    put(b, tmp + i, sizeof(tmp) - (size_t) i);
}

/* Text bytes into the line: latin-1 bytes (as the environ's str hold
   them) become UTF-8, as Python writes the line; then Gunicorn's escaping
   (" as \") or JSON's. */
static void
put_text(buf *b, const char *p, size_t n, int latin1, int json, int escape)
{
    reserve(b, n * 2 + 8);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char) p[i];
        if (json && (ch < 0x20 || ch == 0x7f || ch == '"' || ch == '\\')) {
            static const char hex[] = "0123456789abcdef";
            char esc[6] = {'\\', 'u', '0', '0', hex[ch >> 4], hex[ch & 15]};
            reserve(b, 6 + (n - i) * 2);
            switch (ch) {
            case '"':
            case '\\':
                b->p[b->len++] = '\\';
                b->p[b->len++] = (char) ch;
                continue;
            case '\n':
                b->p[b->len++] = '\\';
                b->p[b->len++] = 'n';
                continue;
            case '\r':
                b->p[b->len++] = '\\';
                b->p[b->len++] = 'r';
                continue;
            case '\t':
                b->p[b->len++] = '\\';
                b->p[b->len++] = 't';
                continue;
            default:
                memcpy(b->p + b->len, esc, 6);
                b->len += 6;
                continue;
            }
        }
        if (escape && !json && ch == '"') {
            b->p[b->len++] = '\\';
            b->p[b->len++] = '"';
            continue;
        }
        if (latin1 && ch >= 0x80) {
            b->p[b->len++] = (char) (0xc0 | (ch >> 6));
            b->p[b->len++] = (char) (0x80 | (ch & 0x3f));
            continue;
        }
        b->p[b->len++] = (char) ch;
    }
}

/* Bytes of the character at p[i]: a UTF-8 sequence, or in JSON an escape
   (\" \\ \n \r \t, \u00XX), never cut in two. */
static size_t
char_len(const char *p, size_t i, size_t end, int json)
{
    size_t n = 1;

    if (json && p[i] == '\\' && i + 1 < end) {
        n = p[i + 1] == 'u' ? 6 : 2;
    } else {
        while (i + n < end && ((unsigned char) p[i + n] & 0xc0) == 0x80) {
            n++;
        }
    }
    return i + n <= end ? n : end - i;
}

/* Python's width and precision on what was put from `start`, counted in
   characters. */
static void
shape(buf *b, size_t start, const nw_alop *op, int json)
{
    size_t chars = 0, i;

    if (op->prec >= 0) {
        for (i = start; i < b->len && chars < (size_t) op->prec; chars++) {
            i += char_len(b->p, i, b->len, json);
        }
        b->len = i;
    }
    if (op->width <= 0) {
        return;
    }
    chars = 0;
    for (i = start; i < b->len; chars++) {
        i += char_len(b->p, i, b->len, json);
    }
    if (chars >= (size_t) op->width) {
        return;
    }
    {
        size_t pad = (size_t) op->width - chars;
        char fill = op->zero && op->conv == 'd' && !op->left ? '0' : ' ';
        reserve(b, pad);
        if (op->left) {
            memset(b->p + b->len, ' ', pad);
        } else {
            memmove(b->p + start + pad, b->p + start, b->len - start);
            memset(b->p + start, fill, pad);
        }
        b->len += pad;
    }
}

/* A str from the environ into the line. */
static void
put_pystr(buf *b, PyObject *s, int json, int escape)
{
    if (PyUnicode_KIND(s) == PyUnicode_1BYTE_KIND) {
        put_text(b, (const char *) PyUnicode_1BYTE_DATA(s),
                 (size_t) PyUnicode_GET_LENGTH(s), 1, json, escape);
    } else {
        Py_ssize_t n;
        const char *u = PyUnicode_AsUTF8AndSize(s, &n);
        if (u == NULL) {
            PyErr_Clear(); /* a lone surrogate */
            put_text(b, "?", 1, 0, json, escape);
        } else {
            put_text(b, u, (size_t) n, 0, json, escape);
        }
    }
}

/* Any environ value: a str is escaped, anything else is its str()
   unescaped, as SafeAtoms does. */
static void
put_pyobj(buf *b, PyObject *v, int json)
{
    PyObject *s;

    if (PyUnicode_Check(v)) {
        put_pystr(b, v, json, 1);
        return;
    }
    s = PyObject_Str(v);
    if (s == NULL) {
        PyErr_Clear();
        put_text(b, "-", 1, 0, json, 0);
        return;
    }
    put_pystr(b, s, json, 0);
    Py_DECREF(s);
}

static PyObject *k_remote_addr, *k_auth, *k_method, *k_raw_uri, *k_proto,
    *k_path, *k_query, *k_referer, *k_agent;

static int
keys_ready(void)
{
    if (k_remote_addr != NULL) {
        return 1;
    }
    k_remote_addr = PyUnicode_InternFromString("REMOTE_ADDR");
    k_auth = PyUnicode_InternFromString("HTTP_AUTHORIZATION");
    k_method = PyUnicode_InternFromString("REQUEST_METHOD");
    k_raw_uri = PyUnicode_InternFromString("RAW_URI");
    k_proto = PyUnicode_InternFromString("SERVER_PROTOCOL");
    k_path = PyUnicode_InternFromString("PATH_INFO");
    k_query = PyUnicode_InternFromString("QUERY_STRING");
    k_referer = PyUnicode_InternFromString("HTTP_REFERER");
    k_agent = PyUnicode_InternFromString("HTTP_USER_AGENT");
    if (!k_remote_addr || !k_auth || !k_method || !k_raw_uri || !k_proto
        || !k_path || !k_query || !k_referer || !k_agent) {
        PyErr_Clear();
        return 0;
    }
    return 1;
}

/* environ.get(key): a borrowed value, or NULL. */
static PyObject *
env_get(const nw_access_rec *r, PyObject *key)
{
    PyObject *v;

    if (r->environ == NULL || key == NULL) {
        return NULL;
    }
    v = PyDict_GetItemWithError(r->environ, key);
    if (v == NULL) {
        PyErr_Clear();
    }
    return v;
}

/* An environ str value, or the fallback when the key is absent. */
static void
put_env(buf *b, const nw_access_rec *r, PyObject *key, const char *fallback,
        int json)
{
    PyObject *v = env_get(r, key);

    if (v != NULL) {
        put_pyobj(b, v, json);
    } else {
        put_text(b, fallback, strlen(fallback), 0, json, 1);
    }
}

static const char *
span(const nw_conn *c, nw_span s)
{
    return nw__span_ptr(&c->http, s);
}

/* The request target split as the environ has it. */
static void
target_parts(const nw_conn *c, const char **path, size_t *plen,
             const char **query, size_t *qlen)
{
    const nw_request *rq = &c->http.req;

    nw__http_split_target(span(c, rq->url), rq->url.len, path, plen, query,
                          qlen);
}

static void
put_decoded_path(buf *b, const nw_conn *c, int json)
{
    const char *path, *query;
    size_t plen, qlen, n;
    char small[1024], *d;

    target_parts(c, &path, &plen, &query, &qlen);
    d = plen <= sizeof(small) ? small : nw__xmalloc(plen);
    n = nw__http_unquote(path, plen, d);
    put_text(b, d, n, 1, json, 1);
    if (d != small) {
        free(d);
    }
}

static void
put_protocol(buf *b, const nw_conn *c)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof(tmp), "HTTP/%u.%u", c->http.req.http_major,
                     c->http.req.http_minor);
    put(b, tmp, (size_t) n);
}

/* The client's address as REMOTE_ADDR would have it. */
static void
put_remote(buf *b, const nw_access_rec *r, int json)
{
    char ip[64];
    PyObject *v = env_get(r, k_remote_addr);

    if (v != NULL) {
        put_pyobj(b, v, json);
        return;
    }
    if (r->environ != NULL) {
        put_text(b, "-", 1, 0, json, 1);
        return;
    }
    /* Gunicorn's error path puts the socket's peer there */
    nw__conn_peer_ip(r->c, 0, ip, sizeof(ip));
    put_text(b, ip, strlen(ip), 0, json, 1);
}

/* binascii.a2b_base64 as b64decode calls it (not strict): bytes outside
   the alphabet are skipped, a complete pad ends the input; -1 for what
   it calls incorrect padding. */
static ssize_t
b64decode(const char *in, size_t n, unsigned char *out, size_t cap)
{
    unsigned quad = 0, pads = 0, left = 0;
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char) in[i];
        int v;

        if (ch == '=') {
            if (quad >= 2 && quad + ++pads >= 4) {
                return (ssize_t) o;
            }
            continue;
        }
        v = ch >= 'A' && ch <= 'Z'   ? ch - 'A'
            : ch >= 'a' && ch <= 'z' ? ch - 'a' + 26
            : ch >= '0' && ch <= '9' ? ch - '0' + 52
            : ch == '+'              ? 62
            : ch == '/'              ? 63
                                     : -1;
        if (v < 0) {
            continue;
        }
        pads = 0;
        if (o + 1 > cap) {
            return -1; /* longer than any user name we would log */
        }
        switch (quad) {
        case 0:
            left = (unsigned) v;
            quad = 1;
            break;
        case 1:
            out[o++] = (unsigned char) ((left << 2) | ((unsigned) v >> 4));
            left = (unsigned) v & 0x0f;
            quad = 2;
            break;
        case 2:
            out[o++] = (unsigned char) ((left << 4) | ((unsigned) v >> 2));
            left = (unsigned) v & 0x03;
            quad = 3;
            break;
        default:
            out[o++] = (unsigned char) ((left << 6) | (unsigned) v);
            quad = 0;
            break;
        }
    }
    return quad == 0 ? (ssize_t) o : -1;
}

/* Would bytes.decode('utf-8') take it? */
static int
valid_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        unsigned c = s[i], cp, k;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            k = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            k = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            k = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (i + k >= n) {
            return 0; /* truncated */
        }
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80) {
                return 0;
            }
            cp = (cp << 6) | (s[i + j] & 0x3f);
        }
        if ((k == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff)))
            || (k == 3 && (cp < 0x10000 || cp > 0x10ffff))) {
            return 0;
        }
        i += k + 1;
    }
    return 1;
}

/* Gunicorn's _get_user: the user of a Basic Authorization, or '-'. */
static void
put_user(buf *b, const nw_access_rec *r, int json)
{
    PyObject *v = env_get(r, k_auth);
    const char *auth;
    Py_ssize_t n;
    unsigned char dec[512];
    ssize_t dn;
    const char *sp;

    if (v == NULL || !PyUnicode_Check(v)
        || PyUnicode_KIND(v) != PyUnicode_1BYTE_KIND) {
        goto none;
    }
    auth = (const char *) PyUnicode_1BYTE_DATA(v);
    n = PyUnicode_GET_LENGTH(v);
    if (n < 5 || strncasecmp(auth, "basic", 5) != 0) {
        goto none;
    }
    sp = memchr(auth, ' ', (size_t) n);
    if (sp == NULL) {
        goto none;
    }
    /* auth.split(" ", 1)[1]: the rest is decoded (its UTF-8 bytes of
       non-ASCII letters are skipped by b64decode as latin-1 bytes are) */
    sp++;
    dn = b64decode(sp, (size_t) (auth + n - sp), dec, sizeof(dec));
    if (dn < 0) {
        goto none;
    }
    {
        unsigned char *colon = memchr(dec, ':', (size_t) dn);
        size_t un = colon ? (size_t) (colon - dec) : (size_t) dn;
        if (un == 0 || !valid_utf8(dec, un)) {
            goto none;
        }
        put_text(b, (const char *) dec, un, 0, json, 1);
        return;
    }
none:
    put_text(b, "-", 1, 0, json, 1);
}

/* "[23/Nov/2026:10:00:00 +0000]", made once a second. */
static void
put_time(buf *b)
{
    static time_t second = (time_t) -1;
    static char text[40];
    static size_t tlen;
    time_t now = time(NULL);

    if (now != second) {
        struct tm tm;
        static const char *const months[] = {"Jan", "Feb", "Mar", "Apr",
                                             "May", "Jun", "Jul", "Aug",
                                             "Sep", "Oct", "Nov", "Dec"};
        char zone[8];
        localtime_r(&now, &tm);
        strftime(zone, sizeof(zone), "%z", &tm);
        tlen = (size_t) snprintf(text, sizeof(text),
                                 "[%02d/%s/%04d:%02d:%02d:%02d %s]",
                                 tm.tm_mday, months[tm.tm_mon],
                                 tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                                 tm.tm_sec, zone);
        second = now;
    }
    put(b, text, tlen);
}

/* The last header of that name (SafeAtoms' dict keeps the last). */
static int
find_req_header(const nw_conn *c, const nw_alop *op, const char *name,
                const char **v, size_t *vlen)
{
    const nw_request *rq = &c->http.req;
    int found = 0;

    for (unsigned i = 0; i < rq->nheaders; i++) {
        const nw_header *h = &rq->headers[i];
        if (h->flags & NW_HDRF_DROP) {
            continue;
        }
        if (op->hdr_id != NW_HDR_OTHER
                ? h->id == op->hdr_id
                : h->name.len == op->len
                      && strncasecmp(span(c, h->name), name, op->len) == 0) {
            *v = span(c, h->value);
            *vlen = h->value.len;
            found = 1;
        }
    }
    return found;
}

static int
find_resp_header(const nw_conn *c, const nw_alop *op, const char *name,
                 const char **v, size_t *vlen)
{
    const char *p = c->resp.headers, *end;
    int found = 0;

    if (c->resp.status == 0 || p == NULL) {
        return 0;
    }
    end = p + c->resp.headers_len;
    while (p < end) {
        const char *eol = memchr(p, '\r', (size_t) (end - p));
        const char *colon = memchr(p, ':', (size_t) ((eol ? eol : end) - p));
        if (eol == NULL) {
            eol = end;
        }
        if (colon != NULL && (size_t) (colon - p) == op->len
            && strncasecmp(p, name, op->len) == 0) {
            const char *s = colon + 1;
            while (s < eol && (*s == ' ' || *s == '\t')) {
                s++;
            }
            *v = s;
            *vlen = (size_t) (eol - s);
            found = 1;
        }
        p = eol + 2;
    }
    return found;
}

/* environ[name], matched without case as SafeAtoms lower-cases keys. */
static PyObject *
find_env(nw_alop *op, const char *name, const nw_access_rec *r)
{
    PyObject *key, *value;
    Py_ssize_t pos = 0;

    if (r->environ == NULL) {
        return NULL;
    }
    if (op->keys[0] == NULL) {
        char *up = nw__xstrdup(name), *low = nw__xstrdup(name);
        for (char *p = up; *p; p++) {
            *p = (char) (*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
        }
        for (char *p = low; *p; p++) {
            *p = (char) (*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
        }
        op->keys[0] = PyUnicode_DecodeLatin1(name, (Py_ssize_t) strlen(name),
                                             NULL);
        op->keys[1] = PyUnicode_InternFromString(up);
        op->keys[2] = PyUnicode_InternFromString(low);
        free(up);
        free(low);
        if (!op->keys[0] || !op->keys[1] || !op->keys[2]) {
            PyErr_Clear();
            return NULL;
        }
    }
    if ((value = env_get(r, op->keys[1])) != NULL
        || (value = env_get(r, op->keys[2])) != NULL
        || (value = env_get(r, op->keys[0])) != NULL) {
        return value;
    }
    /* a key of mixed case the app added */
    while (PyDict_Next(r->environ, &pos, &key, &value)) {
        if (PyUnicode_Check(key)
            && PyUnicode_KIND(key) == PyUnicode_1BYTE_KIND
            && (size_t) PyUnicode_GET_LENGTH(key) == op->len
            && strncasecmp((const char *) PyUnicode_1BYTE_DATA(key), name,
                           op->len)
                   == 0) {
            return value;
        }
    }
    return NULL;
}

static void
put_atom(buf *b, nw_alop *op, const nw_access_rec *r, int json)
{
    const nw_conn *c = r->c;
    const nw_request *rq = &c->http.req;
    uint64_t us = r->duration_us;
    char tmp[40];

    switch (op->atom) {
    case 'h':
        put_remote(b, r, json);
        return;
    case 'l':
        put(b, "-", 1);
        return;
    case 'u':
        put_user(b, r, json);
        return;
    case 't':
        put_time(b);
        return;
    case 'r':
        if (r->environ != NULL) {
            put_env(b, r, k_method, "None", json);
            put(b, " ", 1);
            put_env(b, r, k_raw_uri, "None", json);
            put(b, " ", 1);
            put_env(b, r, k_proto, "None", json);
            return;
        }
        put_text(b, span(c, rq->method), rq->method.len, 1, json, 1);
        put(b, " ", 1);
        put_text(b, span(c, rq->url), rq->url.len, 1, json, 1);
        put(b, " ", 1);
        put_protocol(b, c);
        return;
    case 'm':
        if (r->environ != NULL) {
            put_env(b, r, k_method, "None", json);
        } else {
            put_text(b, span(c, rq->method), rq->method.len, 1, json, 1);
        }
        return;
    case 'U':
        if (r->environ != NULL) {
            put_env(b, r, k_path, "None", json);
        } else {
            put_decoded_path(b, c, json);
        }
        return;
    case 'q':
        if (r->environ != NULL) {
            put_env(b, r, k_query, "None", json);
        } else {
            const char *path, *query;
            size_t plen, qlen;
            target_parts(c, &path, &plen, &query, &qlen);
            put_text(b, query, qlen, 1, json, 1);
        }
        return;
    case 'H':
        if (r->environ != NULL) {
            put_env(b, r, k_proto, "None", json);
        } else {
            put_protocol(b, c);
        }
        return;
    case 's':
        if (r->status > 0) {
            put_u64(b, (uint64_t) r->status);
        } else {
            put(b, json ? "0" : "-", 1);
        }
        return;
    case 'B':
    case 'b':
        put_u64(b, r->sent);
        return;
    case 'f':
        if (r->environ != NULL) {
            put_env(b, r, k_referer, "-", json);
        } else {
            put(b, "-", 1);
        }
        return;
    case 'a':
        if (r->environ != NULL) {
            put_env(b, r, k_agent, "-", json);
        } else {
            put(b, "-", 1);
        }
        return;
    case 'T':
        put_u64(b, us / 1000000);
        return;
    case 'M':
        put_u64(b, us / 1000);
        return;
    case 'D':
        put_u64(b, us);
        return;
    case 'L':
        put(b, tmp,
            (size_t) snprintf(tmp, sizeof(tmp), "%llu.%06llu",
                              (unsigned long long) (us / 1000000),
                              (unsigned long long) (us % 1000000)));
        return;
    case 'p':
        put(b, tmp,
            (size_t) snprintf(tmp, sizeof(tmp), "<%ld>",
                              (long) (nw__hook_self ? nw__hook_self->pid
                                                    : getpid())));
        return;
    default:
        put(b, "-", 1);
    }
}

const char *
nw__accesslog_render(nw_accesslog *al, const nw_access_rec *r, size_t *len)
{
    buf *b = &line;
    int json = al->json;

    b->len = 0;
    if (r->environ != NULL && !keys_ready()) {
        nw_access_rec bare = *r;
        bare.environ = NULL;
        return nw__accesslog_render(al, &bare, len);
    }
    for (unsigned i = 0; i < al->nops; i++) {
        nw_alop *op = &al->ops[i];
        const char *name = al->pool + op->off;
        size_t start = b->len;
        const char *v;
        size_t vlen;

        switch (op->kind) {
        case OP_LIT:
            put(b, name, op->len);
            continue;
        case OP_ATOM:
            put_atom(b, op, r, json);
            break;
        case OP_REQ_HEADER:
            if (find_req_header(r->c, op, name, &v, &vlen)) {
                put_text(b, v, vlen, 1, json, 1);
            } else {
                put(b, "-", 1);
            }
            break;
        case OP_RESP_HEADER:
            if (find_resp_header(r->c, op, name, &v, &vlen)) {
                put_text(b, v, vlen, 1, json, 1);
            } else {
                put(b, "-", 1);
            }
            break;
        case OP_ENV: {
            PyObject *val = find_env(op, name, r);
            if (val != NULL) {
                put_pyobj(b, val, json);
            } else {
                put(b, "-", 1);
            }
            break;
        }
        default:
            put(b, "-", 1);
            break;
        }
        if (op->width > 0 || op->prec >= 0) {
            shape(b, start, op, json);
        }
    }
    reserve(b, 1);
    b->p[b->len] = '\n';
    *len = b->len;
    return b->p;
}

/* ------------------------------------------------------------------------
 * The request's end
 */

static nw_accesslog current;

uint64_t
nw__now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

static const char *
format_of(const nw_settings *s)
{
    const nw_setting_def *d = &nw__setting_defs[NW_S_access_log_format];

    if (s->access_log_json && nw__setting_is_default(s, d)) {
        return nw__access_json_format;
    }
    return s->access_log_format ? s->access_log_format : "";
}

int
nw__access_check(const nw_settings *s, char *err, size_t errlen)
{
    nw_accesslog al;
    char why[512];

    if (nw__accesslog_compile(&al, format_of(s), s->access_log_json, why,
                              sizeof(why))
        != NW_OK) {
        snprintf(err, errlen, "access_log_format: %s", why);
        return NW_ERROR;
    }
    nw__accesslog_free(&al);
    return NW_OK;
}

int
nw__access_setup(const nw_settings *s, char *err, size_t errlen)
{
    nw__hook_mask &= ~NW_HOOK_BIT_ACCESSLOG;
    nw__accesslog_free(&current);
    if (!nw__access_wanted(s)) {
        return NW_OK;
    }
    if (nw__accesslog_compile(&current, format_of(s), s->access_log_json,
                              err, errlen)
        != NW_OK) {
        return NW_ERROR;
    }
    nw__hook_mask |= NW_HOOK_BIT_ACCESSLOG;
    return NW_OK;
}

static void
finish_line(nw_conn *c, const nw_access_rec *rec)
{
    if (nw__hook_mask & NW_HOOK_BIT_ACCESSLOG) {
        size_t len;
        const char *text = nw__accesslog_render(&current, rec, &len);
        nw__access_write(text, len);
    }
    if (NW__HOOK_ON(NW_HOOK_ACCESS)) {
        nw_hook_ctx ctx;
        nw_hook_request hr;
        char ip[64];
        memset(&ctx, 0, sizeof(ctx));
        nw__conn_hook_request(c, &hr, ip, sizeof(ip));
        hr.status = rec->status;
        hr.sent = rec->sent;
        hr.duration_us = rec->duration_us;
        ctx.cfg = c->w != NULL ? c->w->cfg : NULL;
        ctx.req = &hr;
        ctx.core = c;
        nw__hooks_run(NW_HOOK_ACCESS, &ctx);
    }
}

void
nw__access_done(nw_conn *c)
{
    nw_access_rec rec;

    rec.c = c;
    rec.environ = c->environ;
    /* an error response the server made in place of the app's */
    rec.status = nw__conn_status(c);
    rec.sent = c->resp.sent;
    rec.duration_us = nw__now_us() - c->t_start_us;
    finish_line(c, &rec);
}

void
nw__access_refused(nw_conn *c, int status)
{
    nw_access_rec rec;

    rec.c = c;
    rec.environ = NULL;
    rec.status = status;
    rec.sent = 0;
    rec.duration_us = 0; /* Gunicorn times its error path from its start */
    finish_line(c, &rec);
}

int
nw__request_begin(nw_conn *c)
{
    int rc = NW_OK;

    c->req_active = 1;
    if (NW__HOOK_ON(NW_HOOK_PRE_REQUEST)) {
        nw_hook_ctx ctx;
        nw_hook_request hr;
        char ip[64];
        memset(&ctx, 0, sizeof(ctx));
        nw__conn_hook_request(c, &hr, ip, sizeof(ip));
        ctx.cfg = c->w != NULL ? c->w->cfg : NULL;
        ctx.req = &hr;
        ctx.core = c;
        rc = nw__hooks_run(NW_HOOK_PRE_REQUEST, &ctx);
    }
    c->t_start_us = nw__now_us();
    return rc;
}

void
nw__request_end(nw_conn *c)
{
    c->req_active = 0;
    if (nw__hook_mask & (NW_HOOK_BIT(NW_HOOK_ACCESS) | NW_HOOK_BIT_ACCESSLOG)) {
        nw__access_done(c);
    }
    if (NW__HOOK_ON(NW_HOOK_POST_REQUEST)) {
        nw_hook_ctx ctx;
        nw_hook_request hr;
        char ip[64];
        memset(&ctx, 0, sizeof(ctx));
        nw__conn_hook_request(c, &hr, ip, sizeof(ip));
        hr.status = nw__conn_status(c);
        hr.sent = c->resp.sent;
        hr.duration_us = nw__now_us() - c->t_start_us;
        ctx.cfg = c->w != NULL ? c->w->cfg : NULL;
        ctx.req = &hr;
        ctx.core = c;
        nw__hooks_run(NW_HOOK_POST_REQUEST, &ctx);
    }
    Py_CLEAR(c->py_req);
}
