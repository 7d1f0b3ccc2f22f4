/* Server hooks: the registry of callbacks per point (C hook plugins and
   the built-in that calls the config file's Python hooks), loading the
   plugins, and running a point. */
#ifndef NW_HOOKS_H
#define NW_HOOKS_H

#include <stdint.h>

#include <narwhal/hook.h>

#include "config/settings.h"

/* The points that have something to run in this process, a bit each:
   what the request path and the log test before building a context. */
extern uint32_t nw__hook_mask;
#define NW_HOOK_BIT(p) (1u << (p))
#define NW__HOOK_ON(p) ((nw__hook_mask & NW_HOOK_BIT(p)) != 0)
/* Not a point: an access log is written in this process. */
#define NW_HOOK_BIT_ACCESSLOG (1u << 31)
/* What needs a request's end: its time, status and size. */
#define NW_HOOK_REQUEST_END                                                   \
    (NW_HOOK_BIT(NW_HOOK_POST_REQUEST) | NW_HOOK_BIT(NW_HOOK_ACCESS)          \
     | NW_HOOK_BIT_ACCESSLOG)

/* The worker this process is, once it is one (NULL in the master). */
extern nw_worker *nw__hook_self;

/* In the arbiter, before anything starts: load the hook_plugins, then the
   shipped statsd plugin when statsd_host is set and sdnotify when
   NOTIFY_SOCKET is (unless listed already).  NW_OK, or NW_ERROR with one
   sentence in err. */
int nw__hooks_load(const nw_settings *s, char *err, size_t errlen);

/* Register a callback from the core (owner names it in messages). */
void nw__hooks_add(const char *owner, unsigned point, nw_hook_fn fn,
                   void *data, int order);

/* Recompute nw__hook_mask for a process running with settings s: the
   plugins' points, and the points whose Python hook s sets. */
void nw__hooks_activate(const nw_settings *s);

/* Is anything registered at the point for settings s? */
int nw__hooks_any(unsigned point, const nw_settings *s);

/* Run a point: the caller fills the fields that apply; size, point and
   api are set here.  NW_OK, or NW_ERROR when a callback failed (logged);
   at PRE_REQUEST the first failure stops the point. */
int nw__hooks_run(unsigned point, nw_hook_ctx *ctx);

/* The setting of a Gunicorn point's Python hook (on_starting ...); NULL
   for narwhal's own points. */
const nw_setting_def *nw__hook_setting(unsigned point);

/* A point's name, as the setting ("post_fork") or narwhal's ("access"). */
const char *nw__hook_point_name(unsigned point);

/* api entries */
int nw__api_hook_add(nw_hook_registry *reg, unsigned point, nw_hook_fn fn,
                     void *data, int order);
int nw__api_hook_header(const nw_hook_ctx *ctx, int response,
                        unsigned index, const char **name, size_t *nlen,
                        const char **value, size_t *vlen);
int nw__api_set_num_workers(long n);

/* pyhooks.c: the built-in hook that calls the settings' Python
   callables. */
int nw__python_hook(const nw_hook_ctx *ctx, void *data);

#endif
