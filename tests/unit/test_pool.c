/* The gthread class's thread pool: every item runs once, on several
   threads at once, and comes back through the done queue in one piece. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <narwhal/api.h>

#include "../../plugins/gthread/pool.h"

typedef struct job {
    pool_item item; /* first: the item is the job */
    int id;
    int runs;
} job;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static int notified, running, most_running, started;
static int wait_for_peers; /* > 0: each job waits until this many run */

static int
work(pool_item *it)
{
    job *j = (job *) it;
    int result = j->id * 2;

    pthread_mutex_lock(&mu);
    j->runs++;
    started++;
    running++;
    if (running > most_running) {
        most_running = running;
    }
    pthread_cond_broadcast(&changed);
    if (wait_for_peers > 0) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 5; /* a pool that runs one at a time fails, not
                              hangs */
        while (started < wait_for_peers
               && pthread_cond_timedwait(&changed, &mu, &until) == 0) {
        }
    }
    running--;
    pthread_mutex_unlock(&mu);
    return result;
}

static void
notify(void)
{
    pthread_mutex_lock(&mu);
    notified++;
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&mu);
}

static void
reset(int peers)
{
    notified = running = most_running = started = 0;
    wait_for_peers = peers;
}

/* Take done items until n have come back (or 10 s pass). */
static int
collect(job *jobs, int n, int *order)
{
    int got = 0;

    for (int tries = 0; got < n && tries < 10000; tries++) {
        pool_item *it = pool_take_done();
        if (it == NULL) {
            usleep(1000);
            continue;
        }
        while (it != NULL) {
            job *j = (job *) it;
            it = it->next;
            assert_int_equal(j->item.result, j->id * 2);
            if (order != NULL) {
                order[got] = j->id;
            }
            got++;
            assert_true(j - jobs >= 0 && j - jobs < n);
        }
    }
    return got;
}

static void
push_jobs(job *jobs, int n)
{
    for (int i = 0; i < n; i++) {
        memset(&jobs[i], 0, sizeof(jobs[i]));
        jobs[i].id = i;
        pool_push(&jobs[i].item);
    }
}

static void
test_every_item_runs_once(void **state)
{
    static job jobs[500];
    char err[256];

    (void) state;
    reset(0);
    assert_int_equal(pool_start(4, work, notify, err, sizeof(err)), NW_OK);
    push_jobs(jobs, 500);
    assert_int_equal(collect(jobs, 500, NULL), 500);
    for (int i = 0; i < 500; i++) {
        assert_int_equal(jobs[i].runs, 1);
    }
    assert_true(notified >= 1);
    assert_null(pool_take_done());
    pool_stop();
}

static void
test_threads_run_at_once(void **state)
{
    job jobs[4];
    char err[256];

    (void) state;
    reset(4);
    assert_int_equal(pool_start(4, work, notify, err, sizeof(err)), NW_OK);
    push_jobs(jobs, 4);
    assert_int_equal(collect(jobs, 4, NULL), 4);
    /* each job waited for the others: all four ran together */
    assert_int_equal(most_running, 4);
    pool_stop();
}

static void
test_one_thread_keeps_the_order(void **state)
{
    job jobs[50];
    int order[50];
    char err[256];

    (void) state;
    reset(0);
    /* started again after a stop */
    assert_int_equal(pool_start(1, work, notify, err, sizeof(err)), NW_OK);
    push_jobs(jobs, 50);
    assert_int_equal(collect(jobs, 50, order), 50);
    for (int i = 0; i < 50; i++) {
        assert_int_equal(order[i], i);
    }
    assert_int_equal(most_running, 1);
    pool_stop();
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_item_runs_once),
        cmocka_unit_test(test_threads_run_at_once),
        cmocka_unit_test(test_one_thread_keeps_the_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
