/* --log-syslog: the error log (and the access log, unless
   disable_redirect_access_to_syslog) as Python's SysLogHandler sends it
   for Gunicorn: "<PRI>gunicorn.PREFIX.error: [PID] message\0" to
   syslog_addr (unix://PATH[#dgram|#stream], udp://HOST:PORT,
   tcp://HOST:PORT). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log/log.h"
#include "base/memory.h"

int nw__syslog_access;

static int sock = -1;
static int stream;      /* SOCK_STREAM: messages end with NUL only */
static int facility;
static char ident[256]; /* "gunicorn.PREFIX." */
static size_t ident_len;
/* a stream socket is reconnected after a failed send */
static struct sockaddr_storage peer;
static socklen_t peerlen;

static const struct {
    const char *name;
    int code;
} facilities[] = {
    {"kern", 0},    {"user", 1},    {"mail", 2},     {"daemon", 3},
    {"auth", 4},    {"security", 4}, {"syslog", 5},  {"lpr", 6},
    {"news", 7},    {"uucp", 8},    {"cron", 9},     {"authpriv", 10},
    {"ftp", 11},    {"local0", 16}, {"local1", 17},  {"local2", 18},
    {"local3", 19}, {"local4", 20}, {"local5", 21},  {"local6", 22},
    {"local7", 23},
};

int
nw__syslog_on(void)
{
    return sock >= 0;
}

void
nw__syslog_close(void)
{
    if (sock >= 0) {
        close(sock);
    }
    sock = -1;
}

static int
connect_to(int type, char *err, size_t errlen, const char *addr)
{
    int fd = socket(peer.ss_family, type | SOCK_CLOEXEC, 0);

    if (fd < 0) {
        snprintf(err, errlen, "syslog_addr %s: socket: %s", addr,
                 strerror(errno));
        return -1;
    }
    if (connect(fd, (struct sockaddr *) &peer, peerlen) != 0) {
        int saved = errno;
        snprintf(err, errlen,
                 "syslog_addr %s: cannot connect: %s; start the syslog "
                 "daemon or give another --log-syslog-to",
                 addr, strerror(saved));
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int
nw__syslog_open(const nw_settings *s, char *err, size_t errlen)
{
    const char *addr = s->syslog_addr ? s->syslog_addr : "udp://localhost:514";
    const char *prefix = s->syslog_prefix;
    int type = SOCK_DGRAM, either = 0;

    facility = 1;
    for (size_t i = 0; i < sizeof(facilities) / sizeof(facilities[0]); i++) {
        if (strcasecmp(s->syslog_facility, facilities[i].name) == 0) {
            facility = facilities[i].code;
        }
    }
    /* Gunicorn: syslog_prefix as given, else the process name with ':'
       as '.' */
    if (prefix != NULL) {
        snprintf(ident, sizeof(ident), "gunicorn.%s.", prefix);
    } else {
        prefix = s->proc_name ? s->proc_name
                 : s->default_proc_name ? s->default_proc_name
                                        : "narwhal";
        snprintf(ident, sizeof(ident), "gunicorn.%s.", prefix);
        for (char *p = ident; *p; p++) {
            if (*p == ':') {
                *p = '.';
            }
        }
    }
    ident_len = strlen(ident);

    memset(&peer, 0, sizeof(peer));
    if (strncmp(addr, "unix://", 7) == 0) {
        struct sockaddr_un *un = (struct sockaddr_un *) &peer;
        const char *path = addr + 7;
        const char *hash = strchr(path, '#');
        size_t n = hash ? (size_t) (hash - path) : strlen(path);
        if (n >= sizeof(un->sun_path)) {
            snprintf(err, errlen, "syslog_addr %s: the path is too long",
                     addr);
            return NW_ERROR;
        }
        un->sun_family = AF_UNIX;
        memcpy(un->sun_path, path, n);
        peerlen = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + n
                               + 1);
        /* like SysLogHandler: a datagram socket, else a stream one,
           unless the address says which */
        if (hash != NULL && strcmp(hash, "#stream") == 0) {
            type = SOCK_STREAM;
        } else if (hash == NULL) {
            either = 1;
        }
    } else {
        struct addrinfo hints, *res = NULL;
        const char *hp = addr + 6, *colon;
        char host[256], port[16] = "514";
        int rc;

        type = strncmp(addr, "tcp://", 6) == 0 ? SOCK_STREAM : SOCK_DGRAM;
        if (hp[0] == '[') {
            const char *close_b = strchr(hp, ']');
            size_t n = close_b ? (size_t) (close_b - hp - 1) : 0;
            snprintf(host, sizeof(host), "%.*s", (int) n, hp + 1);
            colon = close_b ? strchr(close_b, ':') : NULL;
        } else {
            colon = strchr(hp, ':');
            snprintf(host, sizeof(host), "%.*s",
                     (int) (colon ? (size_t) (colon - hp) : strlen(hp)), hp);
        }
        if (colon != NULL) {
            snprintf(port, sizeof(port), "%s", colon + 1);
        }
        memset(&hints, 0, sizeof(hints));
        hints.ai_socktype = type;
        rc = getaddrinfo(host[0] ? host : "localhost", port, &hints, &res);
        if (rc != 0 || res == NULL) {
            snprintf(err, errlen, "syslog_addr %s: %s", addr,
                     rc ? gai_strerror(rc) : "no address");
            return NW_ERROR;
        }
        memcpy(&peer, res->ai_addr, res->ai_addrlen);
        peerlen = res->ai_addrlen;
        freeaddrinfo(res);
    }
    sock = connect_to(type, err, errlen, addr);
    if (sock < 0 && either && errno == EPROTOTYPE) {
        type = SOCK_STREAM;
        sock = connect_to(type, err, errlen, addr);
    }
    if (sock < 0) {
        return NW_ERROR;
    }
    stream = type == SOCK_STREAM;
    return NW_OK;
}

static int
priority(int level)
{
    /* logging.handlers.SysLogHandler.mapPriority */
    return level >= NW_LOG_CRITICAL ? 2
           : level >= NW_LOG_ERROR  ? 3
           : level >= NW_LOG_WARNING ? 4
           : level >= NW_LOG_INFO    ? 6
                                     : 7;
}

void
nw__syslog_send(int level, const char *which, const char *text, size_t len)
{
    char small[2048];
    char *msg = small;
    size_t cap = sizeof(small), need;
    int n;

    if (sock < 0) {
        return;
    }
    need = ident_len + strlen(which) + len + 48;
    if (need > cap) {
        msg = nw__xmalloc(need);
        cap = need;
    }
    n = snprintf(msg, cap, "<%d>%s%s: [%ld] ", facility * 8 + priority(level),
                 ident, which, (long) getpid());
    memcpy(msg + n, text, len);
    n += (int) len;
    msg[n++] = '\0'; /* SysLogHandler's append_nul */
    /* never block a worker on a slow syslog daemon: a full socket drops
       the line */
    if (send(sock, msg, (size_t) n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0
        && stream && errno != EAGAIN) {
        int fd = socket(peer.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0 && connect(fd, (struct sockaddr *) &peer, peerlen) == 0) {
            dup2(fd, sock);
            fcntl(sock, F_SETFD, FD_CLOEXEC);
            send(sock, msg, (size_t) n, MSG_DONTWAIT | MSG_NOSIGNAL);
        }
        if (fd >= 0) {
            close(fd);
        }
    }
    if (msg != small) {
        free(msg);
    }
}
