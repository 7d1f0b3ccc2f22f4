/* The PROXY protocol (HAProxy's, v1 text and v2 binary) that a front-end
   puts before the first request of a connection, as Gunicorn reads it. */
#ifndef NW_PROXY_H
#define NW_PROXY_H

#include <stddef.h>
#include <stdint.h>

enum nw_proxy_mode {
    NW_PROXY_OFF,
    NW_PROXY_V1,
    NW_PROXY_V2,
    NW_PROXY_AUTO,
};

/* nw__proxy_parse: the bytes do not start a PROXY header */
#define NW_PROXY_NONE 1

typedef struct nw_proxy_info {
    char protocol[8];    /* PROXY_PROTOCOL: TCP4, TCP6, LOCAL or UNSPEC */
    char src_addr[48];   /* REMOTE_ADDR; empty for LOCAL and UNSPEC */
    char dst_addr[48];   /* PROXY_ADDR */
    uint16_t src_port;
    uint16_t dst_port;
    unsigned present : 1;
    unsigned has_addr : 1;
} nw_proxy_info;

/* Look for a PROXY header of the allowed versions at the start of buf.
   NW_OK: parsed, *used bytes belong to it.  NW_AGAIN: too few bytes to
   tell.  NW_PROXY_NONE: no PROXY header here (the bytes are HTTP).
   NW_ERROR: a malformed header, *why says how. */
int nw__proxy_parse(const char *buf, size_t len, unsigned mode,
                    nw_proxy_info *info, size_t *used, const char **why);

/* "off", "v1", "v2", "auto" -> NW_PROXY_*; -1 for anything else. */
int nw__proxy_mode(const char *name);

#endif
