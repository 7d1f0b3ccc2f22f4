#include "config.h"

#include <Python.h>

#include <narwhal/narwhal.h>

#include "plugin/api.h"
#include "hooks/hooks.h"
#include "conn/conn.h"
#include "log/log.h"
#include "python/pyworker.h"
#include "config/settings.h"
#include "worker/worker.h"

static void
api_heartbeat(nw_worker *w)
{
    nw_worker_core *core = w->core;
    nw__slot_beat(core->slot);
}

static const nw_setting_def *
typed(const char *name, int t1, int t2)
{
    const nw_setting_def *d = nw__setting_find(name);
    if (d == NULL || ((int) d->type != t1 && (int) d->type != t2)) {
        return NULL;
    }
    return d;
}

#define VALUE(cfg, d, T)                                                      \
    (*(const T *) (const void *) ((const char *) (cfg) + (d)->offset))

static int
api_config_int(const nw_config *cfg, const char *name, long long *out)
{
    const nw_setting_def *d = typed(name, NW_T_INT, NW_T_DURATION);
    if (d == NULL) {
        return NW_ERROR;
    }
    *out = VALUE(cfg, d, long long);
    return NW_OK;
}

static int
api_config_bool(const nw_config *cfg, const char *name, int *out)
{
    const nw_setting_def *d = typed(name, NW_T_BOOL, NW_T_BOOL);
    if (d == NULL) {
        return NW_ERROR;
    }
    *out = VALUE(cfg, d, int);
    return NW_OK;
}

static int
api_config_double(const nw_config *cfg, const char *name, double *out)
{
    long long v;
    if (api_config_int(cfg, name, &v) != NW_OK) {
        return NW_ERROR;
    }
    *out = (double) v;
    return NW_OK;
}

static int
api_config_str(const nw_config *cfg, const char *name, const char **out)
{
    const nw_setting_def *d = typed(name, NW_T_STR, NW_T_CHOICE);
    if (d == NULL) {
        return NW_ERROR;
    }
    *out = VALUE(cfg, d, char *);
    return NW_OK;
}

static void *
api_gil_release(void)
{
    return PyEval_SaveThread();
}

static void
api_gil_acquire(void *state)
{
    if (state == NULL) {
        /* the calling thread's own state (the worker's main thread has
           one; another thread gets one made) */
        state = PyGILState_GetThisThreadState();
        if (state == NULL) {
            PyGILState_Ensure();
            return;
        }
    }
    PyEval_RestoreThread(state);
}

const nw_api nw__api = {
    .size = sizeof(nw_api),
    .abi_minor = NW_ABI_MINOR,
    .version = NW_VERSION,
    .log = nw__log,
    .heartbeat = api_heartbeat,
    .should_stop = nw__worker_should_stop,
    .config_int = api_config_int,
    .config_bool = api_config_bool,
    .config_double = api_config_double,
    .config_str = api_config_str,
    .serve_connection = nw__serve_connection,
    /* ABI 1.1 */
    .gil_release = api_gil_release,
    .gil_acquire = api_gil_acquire,
    .conn_new = nw__econn_new,
    .conn_open = nw__econn_open,
    .conn_recv = nw__econn_recv,
    .conn_call = nw__econn_call,
    .conn_send = nw__econn_send,
    .conn_close = nw__econn_close,
    .conn_free = nw__econn_free,
    /* ABI 1.2 */
    .hook_add = nw__api_hook_add,
    .hook_header = nw__api_hook_header,
    .set_num_workers = nw__api_set_num_workers,
    /* ABI 1.3 */
    .call_python = nw__api_call_python,
};
