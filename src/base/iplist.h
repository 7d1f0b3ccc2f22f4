/* Lists of IP addresses and networks (forwarded_allow_ips,
   proxy_allow_ips): "127.0.0.1, ::1, 10.0.0.0/8, *", parsed once per
   worker, matched against a peer per connection. */
#ifndef NW_IPLIST_H
#define NW_IPLIST_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct nw_ipnet {
    int family;       /* AF_INET or AF_INET6 */
    unsigned prefix;  /* bits that must match */
    uint8_t addr[16];
} nw_ipnet;

typedef struct nw_iplist {
    nw_ipnet *nets;
    size_t count;
    unsigned any : 1; /* "*" */
} nw_iplist;

/* Parse the items (each an address, a network in CIDR form or "*").  A
   network with host bits set is refused, as Gunicorn 24.1+ does.  On error
   err names the item. */
int nw__iplist_parse(nw_iplist *l, char *const *items, size_t count,
                     char *err, size_t errlen);
void nw__iplist_free(nw_iplist *l);

/* 1 when the address (AF_INET or AF_INET6; an IPv4-mapped IPv6 address
   matches its IPv4 entries) is in the list. */
int nw__iplist_match(const nw_iplist *l, const struct sockaddr *sa);

#endif
