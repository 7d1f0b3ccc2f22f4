/* sdnotify: systemd's Type=notify protocol (sd_notify(3)) as a hook
   plugin, with the public headers only.  Loaded by itself when
   NOTIFY_SOCKET is set (or with --hook-plugin sdnotify):
     when_ready   READY=1, STATUS=, and MAINPID= when this master replaced
                  another one with USR2 (Gunicorn #2856: systemd must
                  follow the new master)
     on_reload    RELOADING=1 (HUP); READY=1 again once the new
                  configuration's workers serve
     tick         STATUS= when the number of workers changes
     stopping     STOPPING=1 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <narwhal/narwhal.h>

NW_HOOK_PLUGIN("sdnotify", "tells systemd (Type=notify) the master's state");

static int sock = -1;
static struct sockaddr_un addr;
static socklen_t addrlen;
static const nw_api *api;
static long last_status = -1;
static int reloading;

static void
notify(const char *msg)
{
    if (sock < 0) {
        return;
    }
    if (sendto(sock, msg, strlen(msg), MSG_NOSIGNAL,
               (const struct sockaddr *) &addr, addrlen)
        < 0) {
        api->log(NW_LOG_DEBUG, "sdnotify: cannot notify systemd: %s",
                 strerror(errno));
    }
}

static void
status(const nw_hook_ctx *ctx, const char *prefix)
{
    char msg[256];

    snprintf(msg, sizeof(msg), "%sSTATUS=narwhal master, %u worker%s", prefix,
             ctx->nworkers, ctx->nworkers == 1 ? "" : "s");
    last_status = ctx->nworkers;
    notify(msg);
}

static int
on_ready(const nw_hook_ctx *ctx, void *data)
{
    char prefix[64];

    (void) data;
    if (ctx->old_master_pid != 0) {
        snprintf(prefix, sizeof(prefix), "MAINPID=%ld\nREADY=1\n",
                 (long) ctx->master_pid);
    } else {
        snprintf(prefix, sizeof(prefix), "READY=1\n");
    }
    status(ctx, prefix);
    return NW_OK;
}

static int
on_reload(const nw_hook_ctx *ctx, void *data)
{
    struct timespec ts;
    char msg[128];

    (void) ctx;
    (void) data;
    /* systemd 253+ wants the monotonic time with RELOADING=1 */
    clock_gettime(CLOCK_MONOTONIC, &ts);
    snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
             (unsigned long long) ts.tv_sec * 1000000ull
                 + (unsigned long long) ts.tv_nsec / 1000ull);
    notify(msg);
    reloading = 1;
    return NW_OK;
}

static int
on_tick(const nw_hook_ctx *ctx, void *data)
{
    (void) data;
    if (ctx->new_master_pid != 0) {
        /* after USR2 the new master speaks for the service (MAINPID=) */
        return NW_OK;
    }
    if (reloading && !(ctx->flags & NW_HOOK_F_RELOADING)) {
        reloading = 0;
        status(ctx, "READY=1\n");
    } else if ((long) ctx->nworkers != last_status) {
        status(ctx, "");
    }
    return NW_OK;
}

static int
on_stopping(const nw_hook_ctx *ctx, void *data)
{
    (void) data;
    if (ctx->new_master_pid != 0) {
        /* the old master leaving after USR2 (WINCH, TERM as documented):
           with NotifyAccess=all, which the MAINPID= hand-over needs,
           systemd would take STOPPING=1 for the whole service */
        return NW_OK;
    }
    notify("STOPPING=1");
    return NW_OK;
}

NW_EXPORT int
narwhal_hook_entry(const nw_api *a, nw_hook_registry *reg)
{
    const char *path = getenv("NOTIFY_SOCKET");
    size_t n;

    api = a;
    if (path == NULL || path[0] == '\0') {
        /* not under systemd: nothing to tell */
        return NW_OK;
    }
    n = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || n >= sizeof(addr.sun_path)) {
        a->log(NW_LOG_ERROR,
               "sdnotify: NOTIFY_SOCKET=%s is not a unix socket path; "
               "systemd is not notified",
               path);
        return NW_OK;
    }
    memset(&addr, 0, sizeof(addr));
    addr.sun_family = AF_UNIX;
    memcpy(addr.sun_path, path, n);
    if (path[0] == '@') {
        addr.sun_path[0] = '\0'; /* abstract namespace */
    }
    addrlen = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + n
                           + (path[0] == '@' ? 0 : 1));
    sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0) {
        a->log(NW_LOG_ERROR, "sdnotify: socket: %s; systemd is not notified",
               strerror(errno));
        return NW_OK;
    }
    if (a->hook_add(reg, NW_HOOK_WHEN_READY, on_ready, NULL,
                    NW_HOOK_ORDER_LAST)
            != NW_OK
        || a->hook_add(reg, NW_HOOK_ON_RELOAD, on_reload, NULL,
                       NW_HOOK_ORDER_FIRST)
               != NW_OK
        || a->hook_add(reg, NW_HOOK_TICK, on_tick, NULL,
                       NW_HOOK_ORDER_MIDDLE)
               != NW_OK
        || a->hook_add(reg, NW_HOOK_STOPPING, on_stopping, NULL,
                       NW_HOOK_ORDER_FIRST)
               != NW_OK) {
        return NW_ERROR;
    }
    return NW_OK;
}
