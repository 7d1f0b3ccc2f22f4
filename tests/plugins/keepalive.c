/*
 * A test worker class: the sync class's loop, but declaring
 * NW_WORKER_KEEPALIVE, so api->serve_connection keeps connections open and
 * serves pipelined requests.  The integration tests use it to check that
 * the core frames requests correctly: a request behind a valid one is
 * answered, nothing behind a refused one is.
 */
#define _GNU_SOURCE /* accept4 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>

#include <narwhal/narwhal.h>

static const nw_api *api;

static int
keepalive_run(nw_worker *w)
{
    unsigned n = w->nlisteners;
    struct pollfd *pfd = calloc(n + 1, sizeof(*pfd));

    if (pfd == NULL) {
        return 1;
    }
    for (unsigned i = 0; i < n; i++) {
        pfd[i].fd = w->listeners[i].fd;
        pfd[i].events = POLLIN;
    }
    pfd[n].fd = w->wakeup_fd;
    pfd[n].events = POLLIN;
    while (api->should_stop(w) == NW_RUN) {
        api->heartbeat(w);
        if (poll(pfd, n + 1, (int) w->heartbeat_interval_ms) <= 0) {
            continue;
        }
        for (unsigned i = 0; i < n; i++) {
            struct sockaddr_storage peer;
            socklen_t len = sizeof(peer);
            int fd;
            if (!(pfd[i].revents & POLLIN)) {
                continue;
            }
            fd = accept4(w->listeners[i].fd, (struct sockaddr *) &peer, &len,
                         SOCK_CLOEXEC);
            if (fd >= 0) {
                api->serve_connection(w, fd, (struct sockaddr *) &peer, len,
                                      &w->listeners[i]);
            }
        }
    }
    free(pfd);
    return 0;
}

static const nw_worker_class keepalive_class = {
    NW_WORKER_CLASS_HEADER,
    .name = "keepalive-test",
    .summary = "blocking, one connection at a time, kept alive (tests)",
    .flags = NW_WORKER_KEEPALIVE,
    .instance_size = sizeof(nw_worker),
    .run = keepalive_run,
};

NW_EXPORT const nw_worker_class *
narwhal_worker_entry(const nw_api *core_api)
{
    api = core_api;
    return &keepalive_class;
}
