/* The access log: access_log_format compiled once into a list of ops, a
   line rendered per request with Gunicorn's atoms and escaping (or JSON
   escaping with access_log_json), without parsing the format again and
   without a Python object. */
#ifndef NW_ACCESSLOG_H
#define NW_ACCESSLOG_H

#include <Python.h>
#include <stddef.h>
#include <stdint.h>

#include "config/settings.h"

struct nw_conn;

typedef struct nw_alop {
    uint8_t kind;      /* enum in accesslog.c */
    char atom;         /* h l u t r m U q H s B b f a T M D L p */
    char conv;         /* 's' or 'd' */
    uint8_t left;      /* '-' flag: pad on the right */
    uint8_t zero;      /* '0' flag (numbers) */
    int width;         /* 0: none */
    int prec;          /* -1: none */
    uint32_t off;      /* literal text, or a {name}'s lower-cased name, in */
    uint32_t len;      /* the pool */
    unsigned hdr_id;   /* NW_HDR_* of a {name}i the parser knows */
    PyObject *keys[3]; /* {name}e: the name as given, upper, lower case */
} nw_alop;

typedef struct nw_accesslog {
    nw_alop *ops;
    unsigned nops;
    char *pool;
    int json;          /* values JSON-escaped */
} nw_accesslog;

/* What one line is about. */
typedef struct nw_access_rec {
    const struct nw_conn *c; /* the parsed request, the response */
    PyObject *environ;       /* after the app ran; NULL: none (refused) */
    int status;              /* 0: no response started */
    uint64_t sent;           /* body bytes */
    uint64_t duration_us;
} nw_access_rec;

/* The default format with access_log_json and access_log_format unset. */
extern const char nw__access_json_format[];

/* Compile a format: %(name)s, with Python's flags, width and precision;
   %(B)d, %(T)d, %(M)d, %(D)d; %% for '%'.  NW_ERROR with one sentence in
   err for anything Python's % would not format per atom. */
int nw__accesslog_compile(nw_accesslog *al, const char *fmt, int json,
                          char *err, size_t errlen);
void nw__accesslog_free(nw_accesslog *al);

/* One line, with a '\n' at [*len]; valid until the next call.  The GIL
   must be held when rec->environ is set. */
const char *nw__accesslog_render(nw_accesslog *al, const nw_access_rec *rec,
                                 size_t *len);

/* The format the settings ask for, compiled: the arbiter checks it at
   start; each worker compiles its own. */
int nw__access_check(const nw_settings *s, char *err, size_t errlen);

/* In a worker: compile this process's format and turn the access log on
   if the settings want one (NW_HOOK_BIT_ACCESSLOG). */
int nw__access_setup(const nw_settings *s, char *err, size_t errlen);

/* Microseconds on the monotonic clock. */
uint64_t nw__now_us(void);

/* The end of a request the app was called for (GIL held): the access line
   and the ACCESS point. */
void nw__access_done(struct nw_conn *c);

/* A request refused after its head was read (the app never saw it): the
   access line and the ACCESS point, with Gunicorn's error environ. */
void nw__access_refused(struct nw_conn *c, int status);

/* The core's per-request app call and its completion, whatever drives the
   connection (GIL held): pre_request, then the clock starts (NW_ERROR:
   a pre_request hook failed, the app must not be called); the access
   line, the ACCESS and POST_REQUEST points.  Called only when
   nw__hook_mask asks for them. */
#define NW_REQUEST_HOOKS                                                      \
    (NW_HOOK_REQUEST_END | NW_HOOK_BIT(NW_HOOK_PRE_REQUEST))
int nw__request_begin(struct nw_conn *c);
void nw__request_end(struct nw_conn *c);

#endif
