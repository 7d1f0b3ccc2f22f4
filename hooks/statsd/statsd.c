/* statsd: Gunicorn's StatsD instrumentation (gunicorn/instrument/
   statsd.py) as a hook plugin, with the public headers only.  Loaded by
   itself when statsd_host is set.  The metric names and types are
   Gunicorn's:
     gunicorn.requests               counter, every request answered
     gunicorn.request.duration       timer (ms), every request answered
     gunicorn.request.status.<code>  counter
     gunicorn.workers                gauge, when the number changes
     gunicorn.backlog                histogram, once a second with
                                     enable_backlog_metric (the core's
                                     log line carries it)
     gunicorn.log.critical|error|warning|exception  counters
   and a Python hook's log call with extra={"metric": ..., "value": ...,
   "mtype": "counter" | "gauge" | "histogram"} becomes that metric.
   statsd_prefix is put in front (with a '.'); dogstatsd_tags are
   appended as "|#tag,tag".  One datagram a metric, over UDP or a unix
   datagram socket, never blocking. */
#include <errno.h>
#include <netdb.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <narwhal/narwhal.h>

NW_HOOK_PLUGIN("statsd", "sends Gunicorn's StatsD metrics");

static const nw_api *api;
static int sock = -1;
static char prefix[256];
static char tags[512];
static long last_workers = -1;

/* A unix socket the daemon had not made yet when we started: tried again
   at most once a second, from whichever process sends. */
static struct sockaddr_un unix_addr;
static int unix_pending;

static int
reconnect(void)
{
    static time_t last;
    time_t now = time(NULL);

    if (now == last) {
        return 0;
    }
    last = now;
    if (connect(sock, (struct sockaddr *) &unix_addr, sizeof(unix_addr))
        != 0) {
        return 0;
    }
    unix_pending = 0;
    return 1;
}

static void
send_metric(const char *name, const char *value, const char *type)
{
    char msg[1024];
    int n;

    if (sock < 0) {
        return;
    }
    /* Gunicorn's increment() sends its sampling rate: "name:1|c|@1.0" */
    if (unix_pending && !reconnect()) {
        return;
    }
    n = snprintf(msg, sizeof(msg), "%s%s:%s|%s%s%s%s", prefix, name, value,
                 type, strcmp(type, "c") == 0 ? "|@1.0" : "",
                 tags[0] ? "|#" : "", tags);
    if (n > 0 && (size_t) n < sizeof(msg)) {
        /* a full socket or an absent daemon costs the metric only */
        ssize_t w = send(sock, msg, (size_t) n, MSG_DONTWAIT | MSG_NOSIGNAL);
        (void) w;
    }
}

static int
on_access(const nw_hook_ctx *ctx, void *data)
{
    char value[64], name[64];
    const nw_hook_request *r = ctx->req;

    (void) data;
    if (r == NULL) {
        return NW_OK;
    }
    snprintf(value, sizeof(value), "%llu.%03llu",
             (unsigned long long) (r->duration_us / 1000),
             (unsigned long long) (r->duration_us % 1000));
    send_metric("gunicorn.request.duration", value, "ms");
    send_metric("gunicorn.requests", "1", "c");
    if (r->status > 0) {
        snprintf(name, sizeof(name), "gunicorn.request.status.%d",
                 r->status);
        send_metric(name, "1", "c");
    }
    return NW_OK;
}

static int
on_log(const nw_hook_ctx *ctx, void *data)
{
    (void) data;
    if (ctx->flags & NW_HOOK_F_EXCEPTION) {
        send_metric("gunicorn.log.exception", "1", "c");
    } else if (ctx->level >= NW_LOG_CRITICAL) {
        send_metric("gunicorn.log.critical", "1", "c");
    } else if (ctx->level >= NW_LOG_ERROR) {
        send_metric("gunicorn.log.error", "1", "c");
    } else if (ctx->level >= NW_LOG_WARNING) {
        send_metric("gunicorn.log.warning", "1", "c");
    }
    /* Gunicorn sends a log call's extra metric only with all three of
       metric, value and mtype, and only for the three types it knows */
    if (ctx->metric != NULL && ctx->metric_value != NULL
        && ctx->metric_type != NULL) {
        const char *t = ctx->metric_type;
        const char *code = strcmp(t, "gauge") == 0       ? "g"
                           : strcmp(t, "counter") == 0   ? "c"
                           : strcmp(t, "histogram") == 0 ? "ms"
                                                         : NULL;
        if (code != NULL) {
            send_metric(ctx->metric, ctx->metric_value, code);
        }
    }
    return NW_OK;
}

static int
on_tick(const nw_hook_ctx *ctx, void *data)
{
    char value[32];

    (void) data;
    if ((long) ctx->nworkers != last_workers) {
        last_workers = (long) ctx->nworkers;
        snprintf(value, sizeof(value), "%u", ctx->nworkers);
        send_metric("gunicorn.workers", value, "g");
    }
    return NW_OK;
}

/* HOST[:PORT] (8125 by default; [v6]:PORT) or unix:PATH / unix://PATH */
static int
open_socket(const char *host_port)
{
    char host[256], port[16] = "8125";
    struct addrinfo hints, *res = NULL, *ai;
    const char *colon;
    int rc, fd = -1;

    if (strncmp(host_port, "unix:", 5) == 0) {
        struct sockaddr_un un;
        const char *path = host_port + 5;
        if (strncmp(path, "//", 2) == 0) {
            path += 2;
        }
        if (strlen(path) >= sizeof(un.sun_path)) {
            api->log(NW_LOG_ERROR, "statsd: %s: the path is too long",
                     host_port);
            return -1;
        }
        memset(&un, 0, sizeof(un));
        un.sun_family = AF_UNIX;
        strcpy(un.sun_path, path);
        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd >= 0
            && connect(fd, (struct sockaddr *) &un, sizeof(un)) != 0) {
            api->log(NW_LOG_WARNING,
                     "statsd: cannot connect to %s: %s; metrics are sent "
                     "once it exists",
                     path, strerror(errno));
            unix_addr = un;
            unix_pending = 1;
        }
        return fd;
    }
    if (host_port[0] == '[') {
        const char *end = strchr(host_port, ']');
        snprintf(host, sizeof(host), "%.*s",
                 (int) (end ? (size_t) (end - host_port - 1) : 0),
                 host_port + 1);
        colon = end ? strchr(end, ':') : NULL;
    } else {
        colon = strrchr(host_port, ':');
        snprintf(host, sizeof(host), "%.*s",
                 (int) (colon ? (size_t) (colon - host_port)
                              : strlen(host_port)),
                 host_port);
    }
    if (colon != NULL) {
        snprintf(port, sizeof(port), "%s", colon + 1);
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_DGRAM;
    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        api->log(NW_LOG_ERROR, "statsd: statsd_host %s: %s", host_port,
                 gai_strerror(rc));
        return -1;
    }
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            break;
        }
        if (fd >= 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        api->log(NW_LOG_ERROR, "statsd: cannot reach %s", host_port);
    }
    return fd;
}

NW_EXPORT int
narwhal_hook_entry(const nw_api *a, nw_hook_registry *reg)
{
    const char *host = NULL, *p = NULL, *t = NULL;

    api = a;
    if (a->config_str(reg->cfg, "statsd_host", &host) != NW_OK
        || host == NULL) {
        a->log(NW_LOG_ERROR, "statsd: statsd_host is not set; give "
                             "--statsd-host HOST:PORT");
        return NW_ERROR;
    }
    if (a->config_str(reg->cfg, "statsd_prefix", &p) == NW_OK && p != NULL) {
        size_t n = strlen(p);
        /* Gunicorn's re.sub(r"^(.+[^.]+)\.*$", r"\g<1>.", prefix): the
           trailing dots become one, and a prefix of fewer than two
           characters before them is left as it is */
        while (n > 0 && p[n - 1] == '.') {
            n--;
        }
        if (n >= 2) {
            snprintf(prefix, sizeof(prefix), "%.*s.", (int) n, p);
        } else {
            snprintf(prefix, sizeof(prefix), "%s", p);
        }
    }
    if (a->config_str(reg->cfg, "dogstatsd_tags", &t) == NW_OK && t != NULL) {
        snprintf(tags, sizeof(tags), "%s", t);
    }
    sock = open_socket(host);
    if (sock < 0) {
        return NW_ERROR;
    }
    if (a->hook_add(reg, NW_HOOK_ACCESS, on_access, NULL,
                    NW_HOOK_ORDER_MIDDLE)
            != NW_OK
        || a->hook_add(reg, NW_HOOK_LOG, on_log, NULL, NW_HOOK_ORDER_MIDDLE)
               != NW_OK
        || a->hook_add(reg, NW_HOOK_TICK, on_tick, NULL,
                       NW_HOOK_ORDER_MIDDLE)
               != NW_OK) {
        return NW_ERROR;
    }
    return NW_OK;
}
