/*
 * Deliberately broken worker plugins: compiled once per BROKEN_* define,
 * each must be refused by the loader with a precise message (or, for
 * BROKEN_INIT_FAILS, fail to boot).
 */
#include <stddef.h>

#include <narwhal/narwhal.h>

static const nw_api *api;

static int
broken_run(nw_worker *w)
{
    (void) w;
    return 0;
}

#ifdef BROKEN_INIT_FAILS
static int
broken_init(nw_worker *w)
{
    w->api->log(NW_LOG_ERROR, "broken plugin: init refuses on purpose");
    return NW_ERROR;
}
#endif

static nw_worker_class broken_class = {
    NW_WORKER_CLASS_HEADER,
    .name = "broken",
    .summary = "a test plugin that must be refused",
    .instance_size = sizeof(nw_worker),
    .run = broken_run,
#ifdef BROKEN_INIT_FAILS
    .init = broken_init,
#endif
};

#ifdef BROKEN_NO_ENTRY
/* exports something, but not narwhal_worker_entry */
NW_EXPORT const nw_worker_class *narwhal_worker_entry_v0(const nw_api *);

NW_EXPORT const nw_worker_class *
narwhal_worker_entry_v0(const nw_api *core_api)
{
    api = core_api;
    return &broken_class;
}
#else
NW_EXPORT const nw_worker_class *
narwhal_worker_entry(const nw_api *core_api)
{
    api = core_api;
#if defined(BROKEN_NULL_ENTRY)
    return NULL;
#endif
#if defined(BROKEN_BAD_MAGIC)
    broken_class.magic = 0xdeadbeefu;
#elif defined(BROKEN_BAD_MAJOR)
    broken_class.abi_major = NW_ABI_MAJOR + 1;
#elif defined(BROKEN_BAD_MINOR)
    broken_class.abi_minor = NW_ABI_MINOR + 1;
#elif defined(BROKEN_SHORT_STRUCT)
    /* what an older, shorter descriptor would declare */
    broken_class.size = (uint32_t) offsetof(nw_worker_class, flags);
#elif defined(BROKEN_OTHER_PYTHON)
    broken_class.build.py_minor = PY_MINOR_VERSION + 1;
#elif defined(BROKEN_NO_RUN)
    broken_class.run = NULL;
#endif
    return &broken_class;
}
#endif
