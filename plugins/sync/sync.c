/*
 * The sync worker class: Gunicorn's sync worker.  One request at a time,
 * one request per connection (Connection: close), blocking accept across
 * all listeners, a heartbeat between requests.  Built only on the public
 * headers and the api table, exactly as a third-party class would be.
 */
#define _GNU_SOURCE /* accept4 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <narwhal/narwhal.h>

static const nw_api *api;

/* Accept and serve until the listener has nothing more; NW_AGAIN when it
   is drained. */
static int
drain_listener(nw_worker *w, const nw_listener *l)
{
    for (;;) {
        struct sockaddr_storage peer;
        socklen_t len = sizeof(peer);
        int fd = accept4(l->fd, (struct sockaddr *) &peer, &len,
                         SOCK_CLOEXEC);

        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) {
                continue;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                /* EMFILE and friends: back off to the poll */
                api->log(NW_LOG_ERROR, "accept on %s failed: %s", l->url,
                         strerror(errno));
            }
            return NW_AGAIN;
        }
        api->serve_connection(w, fd, (struct sockaddr *) &peer, len, l);
        api->heartbeat(w);
        if (api->should_stop(w) != NW_RUN) {
            return NW_OK;
        }
    }
}

static int
sync_run(nw_worker *w)
{
    unsigned n = w->nlisteners;
    struct pollfd *pfd = calloc(n + 1, sizeof(*pfd));

    if (pfd == NULL) {
        api->log(NW_LOG_CRITICAL, "sync worker: out of memory");
        return 1;
    }
    for (unsigned i = 0; i < n; i++) {
        pfd[i].fd = w->listeners[i].fd;
        pfd[i].events = POLLIN;
    }
    pfd[n].fd = w->wakeup_fd;
    pfd[n].events = POLLIN;

    while (api->should_stop(w) == NW_RUN) {
        int ready;

        api->heartbeat(w);
        ready = poll(pfd, n + 1, (int) w->heartbeat_interval_ms);
        if (ready <= 0) {
            continue; /* timeout or a signal: beat and look again */
        }
        for (unsigned i = 0; i < n; i++) {
            if ((pfd[i].revents & POLLIN)
                && drain_listener(w, &w->listeners[i]) == NW_OK) {
                break;
            }
        }
    }
    free(pfd);
    return 0;
}

static const nw_worker_class sync_class = {
    NW_WORKER_CLASS_HEADER,
    .name = "sync",
    .summary = "one request at a time per process, as Gunicorn's sync",
    .flags = 0,
    .instance_size = sizeof(nw_worker),
    .run = sync_run,
};

NW_EXPORT const nw_worker_class *
narwhal_worker_entry(const nw_api *core_api)
{
    api = core_api;
    return &sync_class;
}
