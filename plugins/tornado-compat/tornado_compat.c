/*
 * The tornado-compat worker class: Gunicorn's `-k tornado`.  A Tornado
 * IOLoop in the worker serves its sockets: a tornado.web.Application as
 * it is, a WSGI app through tornado.wsgi.WSGIContainer.  The loop is
 * Python (driver.py, compiled in as driver_py.h) that the core runs
 * through api->call_python; this file only hands it over.  Built only on
 * the public headers and the api table, as a third party would build it.
 */
#include <narwhal/narwhal.h>

#include "driver_py.h"

#define DRIVER_NAME "<narwhal tornado-compat>"

static const nw_api *api;

static int
call(nw_worker *w, const char *func)
{
    int rc;

    api->gil_acquire(NULL);
    rc = api->call_python(w, driver_py, DRIVER_NAME, func);
    api->gil_release();
    return rc;
}

static int
tornado_init(nw_worker *w)
{
    if (!NW_API_HAS(api, call_python)) {
        api->log(NW_LOG_ERROR, "tornado-compat worker: this narwhal cannot "
                               "run worker classes written in Python (ABI "
                               "1.3): upgrade narwhal");
        return NW_ERROR;
    }
    return call(w, "init") == NW_ERROR ? NW_ERROR : NW_OK;
}

static int
tornado_run(nw_worker *w)
{
    int rc = call(w, "run");
    return rc == NW_ERROR ? 1 : rc;
}

static const nw_worker_class tornado_class = {
    NW_WORKER_CLASS_HEADER,
    .name = "tornado-compat",
    .summary = "a Tornado IOLoop: tornado.web apps, and WSGI apps through "
               "WSGIContainer",
    .flags = NW_WORKER_ASYNC | NW_WORKER_KEEPALIVE,
    .instance_size = sizeof(nw_worker),
    .init = tornado_init,
    .run = tornado_run,
};

NW_EXPORT const nw_worker_class *
narwhal_worker_entry(const nw_api *core_api)
{
    api = core_api;
    return &tornado_class;
}
