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

/* Accept and serve until the listener has nothing more (NW_AGAIN), or
   until the worker must stop (NW_OK).  While draining, a graceful stop
   does not interrupt: the connections already queued are served. */
static int
drain_listener(nw_worker *w, const nw_listener *l, int draining)
{
    for (;;) {
        struct sockaddr_storage peer;
        socklen_t len = sizeof(peer);
        int fd = accept4(l->fd, (struct sockaddr *) &peer, &len,
                         SOCK_CLOEXEC);
        int stop;

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
        stop = api->should_stop(w);
        if (stop == NW_STOP_QUICK || (stop != NW_RUN && !draining)) {
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
                && drain_listener(w, &w->listeners[i], 0) == NW_OK) {
                break;
            }
        }
    }
    /* A graceful stop serves what already waits in the listen backlog
       (Gunicorn #3397) before the worker exits; the arbiter has closed
       its copies of the sockets, so no new client is sent our way once
       every worker has drained. */
    for (unsigned i = 0; i < n && api->should_stop(w) == NW_STOP_GRACEFUL;
         i++) {
        drain_listener(w, &w->listeners[i], 1);
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
