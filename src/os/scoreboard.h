/* The scoreboard: one shared-memory slot per worker, mapped before the
   first fork.  A worker writes its own slot (heartbeat, counters, state);
   the arbiter reads them all.  No file per worker, no syscall per
   heartbeat (Gunicorn #1194). */
#ifndef NW_SCOREBOARD_H
#define NW_SCOREBOARD_H

#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

enum nw_slot_state {
    NW_SLOT_FREE,
    NW_SLOT_BOOTING,  /* forked, loading the app */
    NW_SLOT_READY,    /* serving */
    NW_SLOT_STOPPING, /* asked to stop, finishing its work */
    NW_SLOT_RETIRING, /* reached max_requests: serving until its
                         successor is ready */
};

typedef struct nw_slot {
    _Atomic int32_t pid;
    _Atomic uint32_t state;
    _Atomic uint64_t heartbeat_ns; /* CLOCK_MONOTONIC of the last beat */
    _Atomic uint64_t requests;     /* served since boot */
    uint64_t spare[5];             /* pads the slot to a cache line */
} nw_slot;

#define NW_SCOREBOARD_SLOTS 1024

typedef struct nw_scoreboard {
    nw_slot *slots;
    unsigned nslots;
} nw_scoreboard;

int nw__scoreboard_create(nw_scoreboard *sb, unsigned nslots);
void nw__scoreboard_destroy(nw_scoreboard *sb);

/* A free slot, or -1 when all are taken. */
int nw__scoreboard_claim(nw_scoreboard *sb, pid_t placeholder);
void nw__scoreboard_release(nw_scoreboard *sb, unsigned slot);

uint64_t nw__monotonic_ns(void);

static inline void
nw__slot_beat(nw_slot *s)
{
    atomic_store_explicit(&s->heartbeat_ns, nw__monotonic_ns(),
                          memory_order_relaxed);
}

#endif
