/*
 * narwhal: the build fingerprint.
 *
 * Worker plugins run inside the core's embedded CPython and may embed libev
 * watchers, so the core refuses a plugin built against another Python
 * (the full, non-limited C API changes between minor versions), a debug
 * Python, other pointer or off_t sizes, or another libev major.  The struct
 * is fixed-width with no padding so that it can be compared field by field
 * and the refusal can name the field that differs.
 */
#ifndef NARWHAL_FINGERPRINT_H
#define NARWHAL_FINGERPRINT_H

#include <stdint.h>
#include <sys/types.h>

#include <Python.h>
#include <ev.h>

typedef struct nw_build_fingerprint {
    uint16_t size;          /* sizeof(nw_build_fingerprint) at build time */
    uint16_t py_major;      /* PY_MAJOR_VERSION */
    uint16_t py_minor;      /* PY_MINOR_VERSION */
    uint16_t py_debug;      /* 1 if built against a Py_DEBUG interpreter */
    uint16_t ptr_size;      /* sizeof(void *) */
    uint16_t off_t_size;    /* sizeof(off_t): large-file support */
    uint16_t ev_major;      /* EV_VERSION_MAJOR */
    uint16_t reserved;      /* zero */
} nw_build_fingerprint;

#ifdef Py_DEBUG
#define NW__PY_DEBUG 1
#else
#define NW__PY_DEBUG 0
#endif

/* The fingerprint of the translation unit that expands this macro. */
#define NW_BUILD_FINGERPRINT                                                  \
    {                                                                         \
        (uint16_t) sizeof(nw_build_fingerprint), PY_MAJOR_VERSION,            \
        PY_MINOR_VERSION, NW__PY_DEBUG, (uint16_t) sizeof(void *),            \
        (uint16_t) sizeof(off_t), EV_VERSION_MAJOR, 0                         \
    }

#endif /* NARWHAL_FINGERPRINT_H */
