/*
 * narwhal: version and plugin ABI numbers.
 *
 * ABI rules (DESIGN section 4): a plugin is refused unless its abi_major
 * equals NW_ABI_MAJOR and its abi_minor is not newer than the core's.  The
 * minor grows by one with every function appended to nw_api or field taken
 * from a reserved slot; nothing is ever reordered or removed without a
 * major bump.
 *
 * ABI changelog (newest last):
 *   1.0  2026-11-23  first ABI: nw_worker_class, nw_worker, nw_api with
 *                    log, heartbeat, should_stop, config getters,
 *                    serve_connection.
 *   1.1  2026-11-24  event-mode connections (issue 7): nw_conn, NW_CONN_*,
 *                    gil_release, gil_acquire, conn_new, conn_open,
 *                    conn_recv, conn_call, conn_send, conn_close,
 *                    conn_free.
 *   1.2  2026-11-24  hook plugins (hook.h: narwhal_hook_info and
 *                    narwhal_hook_entry); nw_api gains hook_add,
 *                    hook_header, set_num_workers.
 *   1.3  2026-11-24  worker classes written in Python: call_python.
 */
#ifndef NARWHAL_VERSION_H
#define NARWHAL_VERSION_H

#define NW_VERSION        "0.1.0"
#define NW_ABI_MAJOR      1
#define NW_ABI_MINOR      3

/* True when the core a plugin runs in provides at least ABI major.minor. */
#define NW_ABI_AT_LEAST(api, major, minor)                                    \
    (NW_ABI_MAJOR == (major) && (api)->abi_minor >= (minor))

#endif /* NARWHAL_VERSION_H */
