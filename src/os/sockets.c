#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log/log.h"
#include "base/memory.h"
#include "os/sockets.h"

#define DEFAULT_PORT 8000

static int
parse_port(const char *s, size_t n, int *port)
{
    long v = 0;

    if (n == 0 || n > 5) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char) s[i])) {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }
    if (v > 65535) {
        return -1;
    }
    *port = (int) v;
    return 0;
}

int
nw__bind_parse(const char *spec, nw_bind_addr *out, char *err, size_t errlen)
{
    const char *host, *port_s = NULL;
    size_t host_len, port_len = 0;

    memset(out, 0, sizeof(*out));
    if (strncmp(spec, "unix:", 5) == 0) {
        const char *path = spec + 5;
        if (strncmp(path, "//", 2) == 0) {
            path += 2;
        }
        if (*path == '\0') {
            snprintf(err, errlen, "'%s' has no socket path after 'unix:'",
                     spec);
            return NW_ERROR;
        }
        if (strlen(path) >= sizeof(out->path)) {
            snprintf(err, errlen,
                     "unix socket path '%s' is longer than %zu bytes", path,
                     sizeof(out->path) - 1);
            return NW_ERROR;
        }
        out->kind = NW_ADDR_UNIX;
        strcpy(out->path, path);
        return NW_OK;
    }
    if (strncmp(spec, "fd://", 5) == 0) {
        int fd;
        if (parse_port(spec + 5, strlen(spec + 5), &fd) != 0) {
            snprintf(err, errlen, "'%s' is not a valid file descriptor",
                     spec + 5);
            return NW_ERROR;
        }
        out->kind = NW_ADDR_FD;
        out->fd = fd;
        return NW_OK;
    }
    if (strncmp(spec, "tcp://", 6) == 0) {
        spec += 6;
    }
    out->kind = NW_ADDR_TCP;
    out->port = DEFAULT_PORT;
    host = spec;
    host_len = strlen(spec);
    if (spec[0] == '[') {
        const char *close = strchr(spec, ']');
        if (close == NULL) {
            snprintf(err, errlen, "'%s': IPv6 address lacks its ']'", spec);
            return NW_ERROR;
        }
        host = spec + 1;
        host_len = (size_t) (close - host);
        if (close[1] == ':') {
            port_s = close + 2;
            port_len = strlen(port_s);
        } else if (close[1] != '\0') {
            snprintf(err, errlen, "'%s': expected ':PORT' after ']'", spec);
            return NW_ERROR;
        }
        out->ipv6 = 1;
    } else {
        const char *colon = strchr(spec, ':');
        if (colon != NULL) {
            if (strchr(colon + 1, ':') != NULL) {
                snprintf(err, errlen,
                         "'%s': write an IPv6 address in brackets, "
                         "e.g. [::1]:8000",
                         spec);
                return NW_ERROR;
            }
            host_len = (size_t) (colon - spec);
            port_s = colon + 1;
            port_len = strlen(port_s);
        }
    }
    if (port_s != NULL && parse_port(port_s, port_len, &out->port) != 0) {
        snprintf(err, errlen, "'%.*s' is not a valid port number",
                 (int) port_len, port_s);
        return NW_ERROR;
    }
    if (host_len >= sizeof(out->host)) {
        snprintf(err, errlen, "host name in '%s' is too long", spec);
        return NW_ERROR;
    }
    if (host_len == 0) {
        strcpy(out->host, out->ipv6 ? "::" : "0.0.0.0");
    } else {
        for (size_t i = 0; i < host_len; i++) {
            out->host[i] = (char) tolower((unsigned char) host[i]);
        }
        out->host[host_len] = '\0';
    }
    if (out->ipv6) {
        struct in6_addr a6;
        if (inet_pton(AF_INET6, out->host, &a6) != 1) {
            snprintf(err, errlen, "'%s' is not a valid IPv6 address",
                     out->host);
            return NW_ERROR;
        }
    }
    return NW_OK;
}

void
nw__bind_describe(const nw_bind_addr *a, char *buf, size_t len)
{
    switch (a->kind) {
    case NW_ADDR_TCP:
        snprintf(buf, len, "('%s', %d)", a->host, a->port);
        break;
    case NW_ADDR_UNIX:
        snprintf(buf, len, "%s", a->path);
        break;
    case NW_ADDR_FD:
        snprintf(buf, len, "fd://%d", a->fd);
        break;
    }
}

static char *
url_of(int fd, int family)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char host[INET6_ADDRSTRLEN];
    char buf[INET6_ADDRSTRLEN + 32];

    if (getsockname(fd, (struct sockaddr *) &ss, &len) != 0) {
        return nw__xstrdup("unknown");
    }
    if (family == AF_UNIX) {
        struct sockaddr_un *un = (struct sockaddr_un *) &ss;
        snprintf(buf, sizeof(buf), "unix:");
        return strcat(strcpy(nw__xmalloc(strlen(un->sun_path) + 6), buf),
                      un->sun_path);
    }
    if (family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *) &ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
        snprintf(buf, sizeof(buf), "http://[%s]:%u", host,
                 ntohs(s6->sin6_port));
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *) &ss;
        inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
        snprintf(buf, sizeof(buf), "http://%s:%u", host,
                 ntohs(s4->sin_port));
    }
    return nw__xstrdup(buf);
}

static int
set_flags(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        return -1;
    }
    return fcntl(fd, F_SETFD, FD_CLOEXEC);
}

static void
sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long) (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static int
open_tcp(const nw_bind_addr *a, int backlog, int tries, unsigned delay_ms,
         int reuse_port, nw_listener *l, char *err, size_t errlen)
{
    struct addrinfo hints, *res = NULL;
    char port[8], desc[300];
    int rc, fd = -1, one = 1;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = a->ipv6 ? AF_INET6 : AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(port, sizeof(port), "%d", a->port);
    nw__bind_describe(a, desc, sizeof(desc));
    rc = getaddrinfo(a->host, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "can't resolve %s: %s", desc, gai_strerror(rc));
        return NW_ERROR;
    }
    for (int i = 0; i < tries; i++) {
        fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            snprintf(err, errlen, "can't create a socket for %s: %s", desc,
                     strerror(errno));
            freeaddrinfo(res);
            return NW_ERROR;
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (reuse_port) {
            setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
        }
        if (bind(fd, res->ai_addr, res->ai_addrlen) == 0) {
            break;
        }
        rc = errno;
        close(fd);
        fd = -1;
        if (rc != EADDRINUSE) {
            snprintf(err, errlen, "Can't connect to %s: %s", desc,
                     strerror(rc));
            freeaddrinfo(res);
            return NW_ERROR;
        }
        nw__log(NW_LOG_ERROR, "Connection in use: %s", desc);
        if (i + 1 < tries) {
            nw__log(NW_LOG_DEBUG, "Retrying in 1 second.");
            sleep_ms(delay_ms);
        }
    }
    l->family = res->ai_family;
    freeaddrinfo(res);
    if (fd < 0) {
        snprintf(err, errlen,
                 "Can't connect to %s: address already in use; stop what "
                 "listens there or bind another address with -b",
                 desc);
        return NW_ERROR;
    }
    if ((!reuse_port && listen(fd, backlog) != 0) || set_flags(fd) != 0) {
        snprintf(err, errlen, "can't listen on %s: %s", desc,
                 strerror(errno));
        close(fd);
        return NW_ERROR;
    }
    l->fd = fd;
    l->url = url_of(fd, l->family);
    return NW_OK;
}

int
nw__listener_clone(const nw_listener *master, int backlog, nw_listener *l,
                   char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int one = 1, fd;

    if (getsockname(master->fd, (struct sockaddr *) &ss, &len) != 0) {
        snprintf(err, errlen, "cannot read the address of %s: %s",
                 master->url, strerror(errno));
        return NW_ERROR;
    }
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create a socket for %s: %s",
                 master->url, strerror(errno));
        return NW_ERROR;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *) &ss, len) != 0
        || listen(fd, backlog) != 0) {
        snprintf(err, errlen, "cannot listen on %s with SO_REUSEPORT: %s",
                 master->url, strerror(errno));
        close(fd);
        return NW_ERROR;
    }
    *l = *master;
    l->fd = fd;
    return NW_OK;
}

static int
open_unix(const nw_bind_addr *a, int backlog, nw_listener *l, char *err,
          size_t errlen)
{
    struct sockaddr_un un;
    struct stat st;
    int fd;

    if (lstat(a->path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(err, errlen,
                     "Can't bind unix:%s: the file exists and is not a "
                     "socket; remove it or bind another path",
                     a->path);
            return NW_ERROR;
        }
        unlink(a->path);
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "can't create a unix socket: %s",
                 strerror(errno));
        return NW_ERROR;
    }
    memset(&un, 0, sizeof(un));
    un.sun_family = AF_UNIX;
    strcpy(un.sun_path, a->path);
    if (bind(fd, (struct sockaddr *) &un, sizeof(un)) != 0
        || listen(fd, backlog) != 0 || set_flags(fd) != 0) {
        snprintf(err, errlen, "Can't connect to %s: %s", a->path,
                 strerror(errno));
        close(fd);
        return NW_ERROR;
    }
    l->fd = fd;
    l->family = AF_UNIX;
    l->url = url_of(fd, AF_UNIX);
    return NW_OK;
}

static int
open_fd(const nw_bind_addr *a, int backlog, int reuse_port, nw_listener *l,
        char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int type = 0;
    socklen_t tlen = sizeof(type);

    if (getsockname(a->fd, (struct sockaddr *) &ss, &len) != 0
        || getsockopt(a->fd, SOL_SOCKET, SO_TYPE, &type, &tlen) != 0
        || type != SOCK_STREAM) {
        snprintf(err, errlen,
                 "fd://%d is not an open stream socket; pass the number of "
                 "an inherited listening socket",
                 a->fd);
        return NW_ERROR;
    }
    /* an old master's SO_REUSEPORT socket (USR2) stays only bound */
    int only_bound = reuse_port && ss.ss_family != AF_UNIX;
    if ((!only_bound && listen(a->fd, backlog) != 0)
        || set_flags(a->fd) != 0) {
        snprintf(err, errlen, "can't listen on fd://%d: %s", a->fd,
                 strerror(errno));
        return NW_ERROR;
    }
    l->fd = a->fd;
    l->family = ss.ss_family;
    l->url = url_of(a->fd, l->family);
    return NW_OK;
}

int
nw__listener_open(const nw_bind_addr *a, int backlog, int tries,
                  unsigned delay_ms, int reuse_port, nw_listener *l,
                  char *err, size_t errlen)
{
    memset(l, 0, sizeof(*l));
    l->fd = -1;
    switch (a->kind) {
    case NW_ADDR_TCP:
        return open_tcp(a, backlog, tries, delay_ms, reuse_port, l, err,
                        errlen);
    case NW_ADDR_UNIX:
        return open_unix(a, backlog, l, err, errlen);
    case NW_ADDR_FD:
        return open_fd(a, backlog, reuse_port, l, err, errlen);
    }
    return NW_ERROR;
}

void
nw__listener_close(nw_listener *l, int unlink_unix)
{
    if (l->fd >= 0) {
        if (unlink_unix && l->family == AF_UNIX && l->url != NULL
            && strncmp(l->url, "unix:", 5) == 0) {
            unlink(l->url + 5);
        }
        close(l->fd);
        l->fd = -1;
    }
    free((char *) l->url);
    l->url = NULL;
}

long
nw__listener_backlog(const nw_listener *l)
{
    struct tcp_info ti;
    socklen_t len = sizeof(ti);

    if (l->family == AF_UNIX
        || getsockopt(l->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0) {
        return -1;
    }
    /* for a listening socket the kernel reports its accept queue here */
    return (long) ti.tcpi_unacked;
}
