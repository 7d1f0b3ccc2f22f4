#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <narwhal/api.h>

#include "base/iplist.h"
#include "base/memory.h"

static int
parse_one(const char *item, nw_ipnet *net)
{
    char buf[64];
    const char *slash = strchr(item, '/');
    size_t n = slash ? (size_t) (slash - item) : strlen(item);
    unsigned max;
    long prefix;

    if (n == 0 || n >= sizeof(buf)) {
        return -1;
    }
    memcpy(buf, item, n);
    buf[n] = '\0';
    memset(net, 0, sizeof(*net));
    if (inet_pton(AF_INET, buf, net->addr) == 1) {
        net->family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, buf, net->addr) == 1) {
        net->family = AF_INET6;
        max = 128;
    } else {
        return -1;
    }
    net->prefix = max;
    if (slash != NULL) {
        char *end;
        if (slash[1] < '0' || slash[1] > '9') {
            return -1;
        }
        prefix = strtol(slash + 1, &end, 10);
        if (*end != '\0' || prefix < 0 || prefix > (long) max) {
            return -1;
        }
        net->prefix = (unsigned) prefix;
        /* strict CIDR: no bits set past the prefix */
        for (unsigned bit = net->prefix; bit < max; bit++) {
            if (net->addr[bit / 8] & (0x80u >> (bit % 8))) {
                return -2;
            }
        }
    }
    return 0;
}

int
nw__iplist_parse(nw_iplist *l, char *const *items, size_t count, char *err,
                 size_t errlen)
{
    memset(l, 0, sizeof(*l));
    if (count > 0) {
        l->nets = nw__xcalloc(count, sizeof(nw_ipnet));
    }
    for (size_t i = 0; i < count; i++) {
        int rc;
        if (strcmp(items[i], "*") == 0) {
            l->any = 1;
            continue;
        }
        rc = parse_one(items[i], &l->nets[l->count]);
        if (rc != 0) {
            snprintf(err, errlen,
                     rc == -2 ? "'%s' has host bits set: write the network "
                                "address (e.g. 10.0.0.0/8)"
                              : "'%s' is not an IP address, a network "
                                "(ADDRESS/BITS) or '*'",
                     items[i]);
            nw__iplist_free(l);
            return NW_ERROR;
        }
        l->count++;
    }
    return NW_OK;
}

void
nw__iplist_free(nw_iplist *l)
{
    free(l->nets);
    memset(l, 0, sizeof(*l));
}

static int
prefix_match(const uint8_t *a, const uint8_t *b, unsigned bits)
{
    unsigned bytes = bits / 8, rest = bits % 8;

    if (memcmp(a, b, bytes) != 0) {
        return 0;
    }
    if (rest == 0) {
        return 1;
    }
    return ((a[bytes] ^ b[bytes]) & (0xffu << (8 - rest))) == 0;
}

int
nw__iplist_match(const nw_iplist *l, const struct sockaddr *sa)
{
    static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                         0xff, 0xff};
    const uint8_t *addr;
    int family = sa->sa_family;

    if (l->any) {
        return 1;
    }
    if (family == AF_INET) {
        addr = (const uint8_t *) &((const struct sockaddr_in *) sa)->sin_addr;
    } else if (family == AF_INET6) {
        addr = ((const struct sockaddr_in6 *) sa)->sin6_addr.s6_addr;
        if (memcmp(addr, v4mapped, 12) == 0) {
            family = AF_INET;
            addr += 12;
        }
    } else {
        return 0;
    }
    for (size_t i = 0; i < l->count; i++) {
        if (l->nets[i].family == family
            && prefix_match(l->nets[i].addr, addr, l->nets[i].prefix)) {
            return 1;
        }
    }
    return 0;
}
