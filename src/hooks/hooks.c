/* Server hooks: the registry, plugin loading, running a point. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plugin/api.h"
#include "master/arbiter.h"
#include "conn/conn.h"
#include "hooks/hooks.h"
#include "log/log.h"
#include "base/memory.h"
#include "plugin/plugin.h"

uint32_t nw__hook_mask;
nw_worker *nw__hook_self;

typedef struct hook_entry {
    nw_hook_fn fn;
    void *data;
    int order;
    unsigned seq;       /* registration order, for equal orders */
    unsigned owner;     /* index in owners */
} hook_entry;

typedef struct hook_list {
    hook_entry *items;
    unsigned count;
} hook_list;

static hook_list points[NW_HOOK_POINT_COUNT];
static unsigned next_seq;

/* Who registered what, for messages: owners[0] is the Python built-in. */
static const char **owners;
static unsigned nowners;

/* Points that have a C callback (the Python built-in aside). */
static uint32_t c_mask;

/* The points that are Gunicorn's hooks, with their settings. */
static const int point_settings[NW_HOOK_POINT_COUNT] = {
    [NW_HOOK_ON_STARTING] = NW_S_on_starting,
    [NW_HOOK_ON_RELOAD] = NW_S_on_reload,
    [NW_HOOK_WHEN_READY] = NW_S_when_ready,
    [NW_HOOK_PRE_FORK] = NW_S_pre_fork,
    [NW_HOOK_POST_FORK] = NW_S_post_fork,
    [NW_HOOK_POST_WORKER_INIT] = NW_S_post_worker_init,
    [NW_HOOK_WORKER_INT] = NW_S_worker_int,
    [NW_HOOK_WORKER_ABORT] = NW_S_worker_abort,
    [NW_HOOK_PRE_EXEC] = NW_S_pre_exec,
    [NW_HOOK_PRE_REQUEST] = NW_S_pre_request,
    [NW_HOOK_POST_REQUEST] = NW_S_post_request,
    [NW_HOOK_CHILD_EXIT] = NW_S_child_exit,
    [NW_HOOK_WORKER_EXIT] = NW_S_worker_exit,
    [NW_HOOK_NWORKERS_CHANGED] = NW_S_nworkers_changed,
    [NW_HOOK_ON_EXIT] = NW_S_on_exit,
    [NW_HOOK_ACCESS] = -1,
    [NW_HOOK_LOG] = -1,
    [NW_HOOK_TICK] = -1,
    [NW_HOOK_STOPPING] = -1,
};

static const char *const own_names[NW_HOOK_POINT_COUNT] = {
    [NW_HOOK_ACCESS] = "access",
    [NW_HOOK_LOG] = "log",
    [NW_HOOK_TICK] = "tick",
    [NW_HOOK_STOPPING] = "stopping",
};

const nw_setting_def *
nw__hook_setting(unsigned point)
{
    if (point >= NW_HOOK_POINT_COUNT || point_settings[point] < 0) {
        return NULL;
    }
    return &nw__setting_defs[point_settings[point]];
}

const char *
nw__hook_point_name(unsigned point)
{
    const nw_setting_def *d = nw__hook_setting(point);

    if (d != NULL) {
        return d->name;
    }
    return point < NW_HOOK_POINT_COUNT && own_names[point] ? own_names[point]
                                                          : "?";
}

static unsigned
add_owner(const char *name)
{
    owners = nw__xrealloc(owners, (nowners + 1) * sizeof(char *));
    owners[nowners] = nw__xstrdup(name);
    return nowners++;
}

/* The Python built-in comes first at every point it serves. */
static void
init_once(void)
{
    if (nowners > 0) {
        return;
    }
    add_owner("python");
    for (unsigned p = 0; p < NW_HOOK_POINT_COUNT; p++) {
        if (point_settings[p] >= 0) {
            hook_entry e = {nw__python_hook, NULL, NW_HOOK_ORDER_MIDDLE,
                            next_seq++, 0};
            points[p].items = nw__xrealloc(points[p].items,
                                           sizeof(hook_entry));
            points[p].items[0] = e;
            points[p].count = 1;
        }
    }
}

static void
insert(unsigned point, hook_entry e)
{
    hook_list *l = &points[point];
    unsigned at = l->count;

    l->items = nw__xrealloc(l->items, (l->count + 1) * sizeof(hook_entry));
    /* stable: after every entry of a lower or equal order */
    while (at > 0 && l->items[at - 1].order > e.order) {
        l->items[at] = l->items[at - 1];
        at--;
    }
    l->items[at] = e;
    l->count++;
    c_mask |= NW_HOOK_BIT(point);
}

void
nw__hooks_add(const char *owner, unsigned point, nw_hook_fn fn, void *data,
              int order)
{
    hook_entry e = {fn, data, order, 0, 0};

    init_once();
    e.seq = next_seq++;
    e.owner = add_owner(owner);
    insert(point, e);
}

/* ------------------------------------------------------------------------
 * Plugins
 */

/* What reg->core points to while a plugin's entry runs. */
typedef struct registration {
    unsigned owner;
    int open;           /* the entry is running */
    unsigned added;
} registration;

int
nw__api_hook_add(nw_hook_registry *reg, unsigned point, nw_hook_fn fn,
                 void *data, int order)
{
    registration *r = reg != NULL ? reg->core : NULL;
    hook_entry e = {fn, data, order, 0, 0};

    if (r == NULL || !r->open || fn == NULL
        || point >= NW_HOOK_POINT_COUNT) {
        return NW_ERROR;
    }
    e.seq = next_seq++;
    e.owner = r->owner;
    insert(point, e);
    r->added++;
    return NW_OK;
}

/* A refused plugin leaves nothing registered. */
static void
drop_owner(unsigned owner)
{
    c_mask = 0;
    for (unsigned p = 0; p < NW_HOOK_POINT_COUNT; p++) {
        hook_list *l = &points[p];
        unsigned k = 0;
        for (unsigned i = 0; i < l->count; i++) {
            if (l->items[i].owner != owner) {
                l->items[k++] = l->items[i];
            }
        }
        l->count = k;
        for (unsigned i = 0; i < l->count; i++) {
            if (l->items[i].owner != 0) {
                c_mask |= NW_HOOK_BIT(p);
            }
        }
    }
}

static int
load_one(const char *spec, const nw_settings *s, char **loaded,
         size_t nloaded, char *path, size_t pathlen, char *err, size_t errlen)
{
    const nw_hook_plugin *info;
    nw_hook_entry_fn entry;
    nw_hook_registry reg;
    registration r;
    char *real;
    int rc;

    if (nw__hook_plugin_find(spec, s, path, pathlen, err, errlen) != NW_OK) {
        return NW_ERROR;
    }
    real = realpath(path, NULL);
    for (size_t i = 0; i < nloaded; i++) {
        if (real != NULL && strcmp(loaded[i], real) == 0) {
            free(real);
            return NW_AGAIN; /* listed twice: loaded once */
        }
    }
    free(real);
    if (nw__hook_plugin_open(path, &info, &entry, err, errlen) != NW_OK) {
        return NW_ERROR;
    }
    init_once();
    memset(&r, 0, sizeof(r));
    r.owner = add_owner(info->name);
    r.open = 1;
    memset(&reg, 0, sizeof(reg));
    reg.size = sizeof(reg);
    reg.path = path;
    reg.cfg = s;
    reg.core = &r;
    rc = entry(&nw__api, &reg);
    r.open = 0;
    if (rc != NW_OK) {
        drop_owner(r.owner);
        snprintf(err, errlen,
                 "hook plugin %s (%s) refused to load; see its messages "
                 "above",
                 info->name, path);
        return NW_ERROR;
    }
    nw__log(NW_LOG_DEBUG, "Hook plugin %s loaded from %s (%u callbacks)",
            info->name, path, r.added);
    return NW_OK;
}

int
nw__hooks_load(const nw_settings *s, char *err, size_t errlen)
{
    char **loaded = NULL;
    size_t nloaded = 0;
    const char *autos[2];
    size_t nautos = 0;
    int rc = NW_OK;
    char path[4096];

    init_once();
    /* Gunicorn switches to its statsd logger when statsd_host is set and
       tells systemd READY=1 when NOTIFY_SOCKET is: the shipped plugins do
       it here */
    if (s->statsd_host != NULL) {
        autos[nautos++] = "statsd";
    }
    if (getenv("NOTIFY_SOCKET") != NULL && *getenv("NOTIFY_SOCKET")) {
        autos[nautos++] = "sdnotify";
    }
    for (size_t i = 0; i < s->hook_plugins.count + nautos && rc == NW_OK;
         i++) {
        const char *spec = i < s->hook_plugins.count
                               ? s->hook_plugins.items[i]
                               : autos[i - s->hook_plugins.count];
        int one = load_one(spec, s, loaded, nloaded, path, sizeof(path), err,
                           errlen);
        if (one == NW_OK) {
            char *real = realpath(path, NULL);
            loaded = nw__xrealloc(loaded, (nloaded + 1) * sizeof(char *));
            loaded[nloaded++] = real ? real : nw__xstrdup(path);
        } else if (one == NW_ERROR) {
            if (i >= s->hook_plugins.count && strcmp(spec, "sdnotify") == 0) {
                /* Gunicorn needs nothing to notify systemd: a missing
                   plugin only costs the notification */
                nw__log(NW_LOG_WARNING,
                        "NOTIFY_SOCKET is set but systemd will not be "
                        "notified: %s",
                        err);
                continue;
            }
            if (i >= s->hook_plugins.count) {
                size_t n = strlen(err);
                snprintf(err + n, errlen - n, " (statsd_host needs it)");
            }
            rc = NW_ERROR;
        }
    }
    for (size_t i = 0; i < nloaded; i++) {
        free(loaded[i]);
    }
    free(loaded);
    return rc;
}

void
nw__hooks_activate(const nw_settings *s)
{
    uint32_t mask = c_mask;

    init_once();
    for (unsigned p = 0; p < NW_HOOK_POINT_COUNT; p++) {
        const nw_setting_def *d = nw__hook_setting(p);
        if (d != NULL && NW_SETTING_CPTR(s, d, nw_pyref)->obj != NULL) {
            mask |= NW_HOOK_BIT(p);
        }
    }
    if (nw__log_level_from_name(s->loglevel) <= NW_LOG_DEBUG) {
        /* Gunicorn's default pre_request logs "METHOD PATH" at debug:
           the built-in does when the setting is unset */
        mask |= NW_HOOK_BIT(NW_HOOK_PRE_REQUEST);
    }
    nw__hook_mask = mask | (nw__hook_mask & NW_HOOK_BIT_ACCESSLOG);
}

int
nw__hooks_any(unsigned point, const nw_settings *s)
{
    const nw_setting_def *d = nw__hook_setting(point);

    return (c_mask & NW_HOOK_BIT(point)) != 0
           || (d != NULL && s != NULL
               && NW_SETTING_CPTR(s, d, nw_pyref)->obj != NULL);
}

/* ------------------------------------------------------------------------
 * Running a point
 */

static int
stops_on_error(unsigned point)
{
    return point == NW_HOOK_PRE_REQUEST;
}

/* A LOG callback that logs must not run the point again. */
static _Thread_local int in_log_point;

int
nw__hooks_run(unsigned point, nw_hook_ctx *ctx)
{
    hook_list *l;
    int rc = NW_OK;

    if (point >= NW_HOOK_POINT_COUNT) {
        return NW_ERROR;
    }
    init_once();
    l = &points[point];
    if (point == NW_HOOK_LOG) {
        if (in_log_point) {
            return NW_OK;
        }
        in_log_point = 1;
    }
    ctx->size = sizeof(*ctx);
    ctx->point = point;
    ctx->api = &nw__api;
    if (ctx->w == NULL) {
        ctx->w = nw__hook_self;
    }
    for (unsigned i = 0; i < l->count; i++) {
        const hook_entry *e = &l->items[i];
        if (e->fn(ctx, e->data) == NW_OK) {
            continue;
        }
        if (e->owner != 0) {
            /* the Python built-in has logged the traceback already */
            nw__log(NW_LOG_ERROR,
                    "Hook plugin %s: its %s callback failed",
                    owners[e->owner], nw__hook_point_name(point));
        }
        rc = NW_ERROR;
        if (stops_on_error(point)) {
            break;
        }
    }
    if (point == NW_HOOK_LOG) {
        in_log_point = 0;
    }
    return rc;
}

/* ------------------------------------------------------------------------
 * The api entries that serve hooks
 */

/* "Name: value\r\n" lines: the index-th */
static int
nth_line(const char *p, size_t len, unsigned index, const char **name,
         size_t *nlen, const char **value, size_t *vlen)
{
    const char *end = p + len;

    while (p < end) {
        const char *eol = memchr(p, '\r', (size_t) (end - p));
        const char *colon;
        if (eol == NULL) {
            eol = end;
        }
        if (index-- == 0) {
            colon = memchr(p, ':', (size_t) (eol - p));
            if (colon == NULL) {
                return NW_ERROR;
            }
            *name = p;
            *nlen = (size_t) (colon - p);
            colon++;
            while (colon < eol && (*colon == ' ' || *colon == '\t')) {
                colon++;
            }
            *value = colon;
            *vlen = (size_t) (eol - colon);
            return NW_OK;
        }
        p = eol + 2;
    }
    return NW_ERROR;
}

int
nw__api_hook_header(const nw_hook_ctx *ctx, int response, unsigned index,
                    const char **name, size_t *nlen, const char **value,
                    size_t *vlen)
{
    const nw_conn *c;

    if (ctx == NULL || ctx->req == NULL || ctx->core == NULL) {
        return NW_ERROR;
    }
    c = ctx->core;
    if (!response) {
        const nw_request *r = &c->http.req;
        const nw_header *h;
        if (index >= r->nheaders) {
            return NW_ERROR;
        }
        h = &r->headers[index];
        *name = nw__span_ptr(&c->http, h->name);
        *nlen = h->name.len;
        *value = nw__span_ptr(&c->http, h->value);
        *vlen = h->value.len;
        return NW_OK;
    }
    if (c->resp.status == 0 || c->resp.headers == NULL) {
        return NW_ERROR;
    }
    return nth_line(c->resp.headers, c->resp.headers_len, index, name, nlen,
                    value, vlen);
}

int
nw__api_set_num_workers(long n)
{
    if (nw__hook_self != NULL || n < 0) {
        return NW_ERROR;
    }
    return nw__arbiter_set_num_workers(n);
}
