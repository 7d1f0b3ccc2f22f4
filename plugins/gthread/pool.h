/*
 * The gthread class's thread pool: threads that take work items from one
 * queue, in order, and hand each back, done, to a second queue the event
 * loop empties.  Knows nothing of HTTP or Python: the work function does.
 */
#ifndef NW_GTHREAD_POOL_H
#define NW_GTHREAD_POOL_H

#include <stddef.h>

/* Lives inside the caller's item: an item is in one queue at a time. */
typedef struct pool_item {
    struct pool_item *next;
    int result; /* what the work function returned */
} pool_item;

/* Runs on a pool thread; its return value is kept in item->result. */
typedef int (*pool_work_fn)(pool_item *item);
/* Called on the pool thread after an item is queued as done, so the loop
   hears of it (an ev_async_send). */
typedef void (*pool_notify_fn)(void);

/* Start n threads.  NW_OK, or NW_ERROR with one sentence in err. */
int pool_start(unsigned n, pool_work_fn work, pool_notify_fn notify,
               char *err, size_t errlen);

/* Queue an item for the next free thread. */
void pool_push(pool_item *item);

/* Take the items done so far, oldest first (NULL if none). */
pool_item *pool_take_done(void);

/* Let the threads leave once the queue is empty and join them: only when
   no item is queued or running (a thread still in an app call would hold
   the stop up), so the caller tells. */
void pool_stop(void);

#endif
