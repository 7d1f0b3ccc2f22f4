/*
 * A worker class built out of tree against an installed narwhal, as a third
 * party would: `make -f tests/sdk/Makefile` with pkg-config on the path.
 * It serves like sync and says so in the log.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>

#include <narwhal/narwhal.h>

static const nw_api *api;

static int
third_init(nw_worker *w)
{
    api->log(NW_LOG_INFO, "third-party worker %u ready (ABI %u.%u)",
             w->number, NW_ABI_MAJOR, api->abi_minor);
    return NW_OK;
}

static int
third_run(nw_worker *w)
{
    struct pollfd pfd[2];

    pfd[0].fd = w->listeners[0].fd;
    pfd[0].events = POLLIN;
    pfd[1].fd = w->wakeup_fd;
    pfd[1].events = POLLIN;
    while (api->should_stop(w) == NW_RUN) {
        struct sockaddr_storage peer;
        socklen_t len = sizeof(peer);
        int fd;

        api->heartbeat(w);
        if (poll(pfd, 2, (int) w->heartbeat_interval_ms) <= 0
            || !(pfd[0].revents & POLLIN)) {
            continue;
        }
        fd = accept4(pfd[0].fd, (struct sockaddr *) &peer, &len,
                     SOCK_CLOEXEC);
        if (fd >= 0) {
            api->serve_connection(w, fd, (struct sockaddr *) &peer, len,
                                  &w->listeners[0]);
        }
    }
    return 0;
}

static const nw_worker_class third_class = {
    NW_WORKER_CLASS_HEADER,
    .name = "third-party",
    .summary = "an out-of-tree worker class",
    .instance_size = sizeof(nw_worker),
    .init = third_init,
    .run = third_run,
};

NW_EXPORT const nw_worker_class *
narwhal_worker_entry(const nw_api *core_api)
{
    api = core_api;
    return &third_class;
}
