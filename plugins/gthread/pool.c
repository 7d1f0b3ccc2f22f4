/*
 * The gthread class's thread pool (pool.h).  One mutex guards both queues:
 * an item goes in and out of each once per request, so there is nothing
 * to gain from finer locks, and the threads sleep on one condition.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <narwhal/api.h>

#include "pool.h"

struct queue {
    pool_item *first, *last;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t work_ready = PTHREAD_COND_INITIALIZER;
static struct queue queued, done;
static int leaving;
static pool_work_fn work_fn;
static pool_notify_fn notify_fn;
static pthread_t *threads;
static unsigned nthreads;

static void
queue_put(struct queue *q, pool_item *it)
{
    it->next = NULL;
    if (q->last != NULL) {
        q->last->next = it;
    } else {
        q->first = it;
    }
    q->last = it;
}

static void *
thread_main(void *arg)
{
    (void) arg;
    pthread_mutex_lock(&lock);
    for (;;) {
        pool_item *it;

        while (queued.first == NULL && !leaving) {
            pthread_cond_wait(&work_ready, &lock);
        }
        if (queued.first == NULL) {
            break;
        }
        it = queued.first;
        queued.first = it->next;
        if (queued.first == NULL) {
            queued.last = NULL;
        }
        pthread_mutex_unlock(&lock);
        it->result = work_fn(it);
        pthread_mutex_lock(&lock);
        queue_put(&done, it);
        /* the loop wakes up once for everything queued before it runs */
        notify_fn();
    }
    pthread_mutex_unlock(&lock);
    return NULL;
}

int
pool_start(unsigned n, pool_work_fn work, pool_notify_fn notify, char *err,
           size_t errlen)
{
    sigset_t all, old;
    int rc = 0;

    work_fn = work;
    notify_fn = notify;
    threads = calloc(n, sizeof(*threads));
    if (threads == NULL) {
        snprintf(err, errlen, "out of memory for %u threads", n);
        return NW_ERROR;
    }
    /* signals are the worker's main thread's: the core's handlers wake
       its loop */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (nthreads = 0; nthreads < n; nthreads++) {
        rc = pthread_create(&threads[nthreads], NULL, thread_main, NULL);
        if (rc != 0) {
            break;
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        snprintf(err, errlen,
                 "cannot start thread %u of %u: %s; lower --threads or "
                 "raise the process's limits (ulimit -u)",
                 nthreads + 1, n, strerror(rc));
        pool_stop();
        return NW_ERROR;
    }
    return NW_OK;
}

void
pool_push(pool_item *it)
{
    pthread_mutex_lock(&lock);
    queue_put(&queued, it);
    pthread_cond_signal(&work_ready);
    pthread_mutex_unlock(&lock);
}

pool_item *
pool_take_done(void)
{
    pool_item *first;

    pthread_mutex_lock(&lock);
    first = done.first;
    done.first = done.last = NULL;
    pthread_mutex_unlock(&lock);
    return first;
}

void
pool_stop(void)
{
    pthread_mutex_lock(&lock);
    leaving = 1;
    pthread_cond_broadcast(&work_ready);
    pthread_mutex_unlock(&lock);
    for (unsigned i = 0; i < nthreads; i++) {
        pthread_join(threads[i], NULL);
    }
    free(threads);
    threads = NULL;
    nthreads = 0;
    leaving = 0;
}
