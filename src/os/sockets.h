/* Listening sockets: bind addresses as Gunicorn spells them. */
#ifndef NW_SOCKETS_H
#define NW_SOCKETS_H

#include <stddef.h>

#include <narwhal/api.h>

enum nw_addr_kind {
    NW_ADDR_TCP,
    NW_ADDR_UNIX,
    NW_ADDR_FD,
};

typedef struct nw_bind_addr {
    enum nw_addr_kind kind;
    char host[256];   /* TCP: lower-cased host, without brackets */
    int port;         /* TCP */
    int ipv6;         /* TCP: host is an IPv6 literal */
    char path[108];   /* UNIX */
    int fd;           /* FD */
} nw_bind_addr;

/* Parse HOST, HOST:PORT, [V6]:PORT, tcp://..., unix:PATH, unix://PATH,
   fd://N (Gunicorn's util.parse_address; default port 8000). */
int nw__bind_parse(const char *spec, nw_bind_addr *out, char *err,
                   size_t errlen);

/* Gunicorn's spelling of an address in its log lines:
   "('127.0.0.1', 8000)", "('::1', 8000)" or the unix path. */
void nw__bind_describe(const nw_bind_addr *a, char *buf, size_t len);

/* Create a listening socket (non-blocking, close-on-exec).  A TCP address
   in use is retried `tries` times, `delay_ms` apart, as Gunicorn does.
   With `reuse_port` a TCP socket gets SO_REUSEPORT and is only bound (it
   reserves the address, and resolves port 0): each worker then listens on
   its own copy (nw__listener_clone).  On success fills *l (url allocated)
   and returns NW_OK. */
int nw__listener_open(const nw_bind_addr *a, int backlog, int tries,
                      unsigned delay_ms, int reuse_port, nw_listener *l,
                      char *err, size_t errlen);

/* A worker's own SO_REUSEPORT socket on the address `master` is bound to,
   so the kernel spreads connections over the workers (Gunicorn #792). */
int nw__listener_clone(const nw_listener *master, int backlog,
                       nw_listener *l, char *err, size_t errlen);

/* Close it; a unix socket's file is removed. */
void nw__listener_close(nw_listener *l, int unlink_unix);

/* The connections waiting in a TCP listener's accept queue (Linux's
   TCP_INFO), or -1 for another kind of socket. */
long nw__listener_backlog(const nw_listener *l);

#endif
