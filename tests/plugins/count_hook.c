/* A hook plugin built with the tests: it appends "POINT PID" to the file
   named by COUNT_HOOK_OUT at every call, so the test counts calls per
   point and process.  -DBROKEN_HOOK_MAGIC / -DBROKEN_HOOK_MAJOR build
   descriptors the loader must refuse; -DHOOK_REFUSES an entry that
   refuses to load. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <narwhal/narwhal.h>

static const char *out;

#ifndef HOOK_REFUSES
static void
note(const char *what, const nw_hook_ctx *ctx)
{
    char line[256];
    int fd, n;

    if (out == NULL) {
        return;
    }
    n = snprintf(line, sizeof(line), "%s %ld", what, (long) getpid());
    if (ctx->req != NULL && ctx->point != NW_HOOK_PRE_REQUEST) {
        n += snprintf(line + n, sizeof(line) - (size_t) n, " %d %llu",
                      ctx->req->status,
                      (unsigned long long) ctx->req->sent);
    }
    if (ctx->req != NULL) {
        n += snprintf(line + n, sizeof(line) - (size_t) n, " %.*s",
                      (int) ctx->req->path_len, ctx->req->path);
    }
    if (ctx->point == NW_HOOK_NWORKERS_CHANGED) {
        n += snprintf(line + n, sizeof(line) - (size_t) n, " %ld %ld",
                      ctx->num_workers, ctx->old_num_workers);
    }
    line[n++] = '\n';
    fd = open(out, O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (fd >= 0) {
        ssize_t w = write(fd, line, (size_t) n);
        (void) w;
        close(fd);
    }
}

static const char *const point_names[] = {
    "on_starting", "on_reload", "when_ready", "pre_fork", "post_fork",
    "post_worker_init", "worker_int", "worker_abort", "pre_exec",
    "pre_request", "post_request", "child_exit", "worker_exit",
    "nworkers_changed", "on_exit", "access", "log", "tick", "stopping",
};

static int
count(const nw_hook_ctx *ctx, void *data)
{
    (void) data;
    note(point_names[ctx->point], ctx);
    return NW_OK;
}

/* Two callbacks at when_ready, registered late-first: the order runs
   "first" before "last". */
static int
tagged(const nw_hook_ctx *ctx, void *data)
{
    note((const char *) data, ctx);
    return NW_OK;
}

static int
failing(const nw_hook_ctx *ctx, void *data)
{
    (void) ctx;
    (void) data;
    return NW_ERROR;
}

#endif

#if defined(BROKEN_HOOK_MAGIC) || defined(BROKEN_HOOK_MAJOR)
NW_EXPORT const nw_hook_plugin *narwhal_hook_info(void);
NW_EXPORT const nw_hook_plugin *
narwhal_hook_info(void)
{
    static nw_hook_plugin info = {
        .magic = NW_HOOK_MAGIC,
        .abi_major = NW_ABI_MAJOR,
        .abi_minor = NW_ABI_MINOR,
        .size = sizeof(nw_hook_plugin),
        .build = NW_BUILD_FINGERPRINT,
        .name = "broken",
        .summary = "refused",
    };
#ifdef BROKEN_HOOK_MAGIC
    info.magic = 0x12345678u;
#else
    info.abi_major = NW_ABI_MAJOR + 1;
#endif
    return &info;
}
#else
NW_HOOK_PLUGIN("count", "counts hook calls (tests)");
#endif

NW_EXPORT int
narwhal_hook_entry(const nw_api *api, nw_hook_registry *reg)
{
    out = getenv("COUNT_HOOK_OUT");
#ifdef HOOK_REFUSES
    api->log(NW_LOG_ERROR, "count hook: refusing to load (test)");
    (void) reg;
    return NW_ERROR;
#else
    for (unsigned p = 0; p < NW_HOOK_POINT_COUNT; p++) {
        if (p == NW_HOOK_LOG || p == NW_HOOK_TICK) {
            continue;
        }
        if (api->hook_add(reg, p, count, NULL, NW_HOOK_ORDER_MIDDLE)
            != NW_OK) {
            return NW_ERROR;
        }
    }
    api->hook_add(reg, NW_HOOK_WHEN_READY, tagged, "order_last",
                  NW_HOOK_ORDER_LAST);
    api->hook_add(reg, NW_HOOK_WHEN_READY, tagged, "order_first",
                  NW_HOOK_ORDER_FIRST);
    if (getenv("COUNT_HOOK_FAIL") != NULL) {
        api->hook_add(reg, NW_HOOK_POST_REQUEST, failing, NULL,
                      NW_HOOK_ORDER_FIRST);
    }
    return NW_OK;
#endif
}
