#include "config.h"

#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include <narwhal/api.h>

#include "os/scoreboard.h"

_Static_assert(sizeof(nw_slot) == 64, "a scoreboard slot is a cache line");

uint64_t
nw__monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

int
nw__scoreboard_create(nw_scoreboard *sb, unsigned nslots)
{
    size_t len = (size_t) nslots * sizeof(nw_slot);
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);

    if (p == MAP_FAILED) {
        return NW_ERROR;
    }
    memset(p, 0, len);
    sb->slots = p;
    sb->nslots = nslots;
    return NW_OK;
}

void
nw__scoreboard_destroy(nw_scoreboard *sb)
{
    if (sb->slots != NULL) {
        munmap(sb->slots, (size_t) sb->nslots * sizeof(nw_slot));
        sb->slots = NULL;
    }
}

int
nw__scoreboard_claim(nw_scoreboard *sb, pid_t placeholder)
{
    for (unsigned i = 0; i < sb->nslots; i++) {
        nw_slot *s = &sb->slots[i];
        if (atomic_load(&s->state) == NW_SLOT_FREE) {
            atomic_store(&s->requests, 0);
            atomic_store(&s->pid, placeholder);
            nw__slot_beat(s);
            atomic_store(&s->state, NW_SLOT_BOOTING);
            return (int) i;
        }
    }
    return -1;
}

void
nw__scoreboard_release(nw_scoreboard *sb, unsigned slot)
{
    atomic_store(&sb->slots[slot].pid, 0);
    atomic_store(&sb->slots[slot].state, NW_SLOT_FREE);
}
