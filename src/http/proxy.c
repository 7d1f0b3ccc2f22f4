#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <narwhal/api.h>

#include "http/proxy.h"

/* v1 lines are at most 107 bytes with their CRLF (the spec's limit) */
#define V1_MAX 107

static const char v2_sig[12] = "\r\n\r\n\0\r\nQUIT\n";

int
nw__proxy_mode(const char *name)
{
    if (name == NULL || strcasecmp(name, "off") == 0 || *name == '\0'
        || strcasecmp(name, "false") == 0) {
        return NW_PROXY_OFF;
    }
    if (strcasecmp(name, "v1") == 0) {
        return NW_PROXY_V1;
    }
    if (strcasecmp(name, "v2") == 0) {
        return NW_PROXY_V2;
    }
    if (strcasecmp(name, "auto") == 0 || strcasecmp(name, "true") == 0) {
        return NW_PROXY_AUTO;
    }
    return -1;
}

/* 1 when buf (len bytes) could still become `want` */
static int
prefix_of(const char *buf, size_t len, const char *want, size_t wlen)
{
    return memcmp(buf, want, len < wlen ? len : wlen) == 0;
}

static int
port_of(const char *s, size_t n, uint16_t *port)
{
    unsigned v = 0;

    if (n == 0 || n > 5) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        v = v * 10 + (unsigned) (s[i] - '0');
    }
    if (v > 65535) {
        return -1;
    }
    *port = (uint16_t) v;
    return 0;
}

static int
addr_of(const char *s, size_t n, int family, char *out, size_t outlen)
{
    unsigned char bin[16];

    if (n == 0 || n >= outlen) {
        return -1;
    }
    memcpy(out, s, n);
    out[n] = '\0';
    return inet_pton(family, out, bin) == 1 ? 0 : -1;
}

/* "PROXY TCP4 1.2.3.4 5.6.7.8 111 222\r\n": exactly six fields, TCP4 or
   TCP6 (Gunicorn refuses UNKNOWN too). */
static int
parse_v1(const char *buf, size_t len, nw_proxy_info *info, size_t *used,
         const char **why)
{
    const char *nl, *f[6], *end;
    size_t flen[6];
    int family;
    const char *p = buf;

    nl = memchr(buf, '\n', len < V1_MAX ? len : V1_MAX);
    if (nl == NULL) {
        if (len >= V1_MAX) {
            *why = "Invalid PROXY line: too long";
            return NW_ERROR;
        }
        return NW_AGAIN;
    }
    if (nl == buf || nl[-1] != '\r') {
        *why = "Invalid PROXY line: it must end with CRLF";
        return NW_ERROR;
    }
    end = nl - 1;
    for (int i = 0; i < 6; i++) {
        const char *sp = memchr(p, ' ', (size_t) (end - p));
        const char *e = (i == 5) ? end : sp;
        if (e == NULL || e == p || (i == 5 && sp != NULL)) {
            *why = "Invalid PROXY line: it needs exactly six fields";
            return NW_ERROR;
        }
        f[i] = p;
        flen[i] = (size_t) (e - p);
        p = e + 1;
    }
    if (flen[1] == 4 && memcmp(f[1], "TCP4", 4) == 0) {
        family = AF_INET;
    } else if (flen[1] == 4 && memcmp(f[1], "TCP6", 4) == 0) {
        family = AF_INET6;
    } else {
        *why = "Invalid PROXY line: protocol must be TCP4 or TCP6";
        return NW_ERROR;
    }
    memset(info, 0, sizeof(*info));
    if (addr_of(f[2], flen[2], family, info->src_addr, sizeof(info->src_addr))
            != 0
        || addr_of(f[3], flen[3], family, info->dst_addr,
                   sizeof(info->dst_addr))
               != 0) {
        *why = "Invalid PROXY line: bad address";
        return NW_ERROR;
    }
    if (port_of(f[4], flen[4], &info->src_port) != 0
        || port_of(f[5], flen[5], &info->dst_port) != 0) {
        *why = "Invalid PROXY line: bad port";
        return NW_ERROR;
    }
    memcpy(info->protocol, f[1], 4);
    info->present = 1;
    info->has_addr = 1;
    *used = (size_t) (nl + 1 - buf);
    return NW_OK;
}

static int
parse_v2(const char *buf, size_t len, nw_proxy_info *info, size_t *used,
         const char **why)
{
    const unsigned char *b = (const unsigned char *) buf;
    size_t body;
    unsigned cmd, family, transport;

    if (len < 16) {
        return NW_AGAIN;
    }
    body = ((size_t) b[14] << 8) | b[15];
    if (len < 16 + body) {
        return NW_AGAIN;
    }
    if ((b[12] >> 4) != 2) {
        *why = "Invalid PROXY v2 header: version is not 2";
        return NW_ERROR;
    }
    cmd = b[12] & 0x0f;
    family = b[13] >> 4;
    transport = b[13] & 0x0f;
    memset(info, 0, sizeof(*info));
    info->present = 1;
    *used = 16 + body;
    if (cmd == 0) {
        /* LOCAL: the proxy's own connection (health checks) */
        strcpy(info->protocol, "LOCAL");
        return NW_OK;
    }
    if (cmd != 1) {
        *why = "Invalid PROXY v2 header: unknown command";
        return NW_ERROR;
    }
    if (family == 0) {
        strcpy(info->protocol, "UNSPEC");
        return NW_OK;
    }
    if (transport != 1) {
        *why = "Invalid PROXY v2 header: only STREAM is supported";
        return NW_ERROR;
    }
    if (family == 1) {
        if (body < 12) {
            *why = "Invalid PROXY v2 header: short address block";
            return NW_ERROR;
        }
        inet_ntop(AF_INET, b + 16, info->src_addr, sizeof(info->src_addr));
        inet_ntop(AF_INET, b + 20, info->dst_addr, sizeof(info->dst_addr));
        info->src_port = (uint16_t) ((b[24] << 8) | b[25]);
        info->dst_port = (uint16_t) ((b[26] << 8) | b[27]);
        strcpy(info->protocol, "TCP4");
    } else if (family == 2) {
        if (body < 36) {
            *why = "Invalid PROXY v2 header: short address block";
            return NW_ERROR;
        }
        inet_ntop(AF_INET6, b + 16, info->src_addr, sizeof(info->src_addr));
        inet_ntop(AF_INET6, b + 32, info->dst_addr, sizeof(info->dst_addr));
        info->src_port = (uint16_t) ((b[48] << 8) | b[49]);
        info->dst_port = (uint16_t) ((b[50] << 8) | b[51]);
        strcpy(info->protocol, "TCP6");
    } else {
        *why = "Invalid PROXY v2 header: only INET, INET6 and UNSPEC "
               "addresses are supported";
        return NW_ERROR;
    }
    info->has_addr = 1;
    /* TLVs after the addresses are skipped */
    return NW_OK;
}

int
nw__proxy_parse(const char *buf, size_t len, unsigned mode,
                nw_proxy_info *info, size_t *used, const char **why)
{
    int v1 = mode == NW_PROXY_V1 || mode == NW_PROXY_AUTO;
    int v2 = mode == NW_PROXY_V2 || mode == NW_PROXY_AUTO;

    if (len == 0) {
        return NW_AGAIN;
    }
    if (v1 && prefix_of(buf, len, "PROXY ", 6)) {
        return len < 6 ? NW_AGAIN : parse_v1(buf, len, info, used, why);
    }
    if (v2 && prefix_of(buf, len, v2_sig, sizeof(v2_sig))) {
        return len < sizeof(v2_sig) ? NW_AGAIN
                                    : parse_v2(buf, len, info, used, why);
    }
    return NW_PROXY_NONE;
}
