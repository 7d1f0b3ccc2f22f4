/* The settings: one table (settings.def), one struct, typed setters. */
#ifndef NW_SETTINGS_H
#define NW_SETTINGS_H

#include <stddef.h>
#include <stdio.h>

#include <narwhal/api.h>

typedef struct nw_strlist {
    char **items;
    size_t count;
} nw_strlist;

/* A string-to-string mapping, in the order given. */
typedef struct nw_strmap {
    char **keys;
    char **values;
    size_t count;
} nw_strmap;

/*
 * A value only Python can hold: a server hook (CALLABLE) or a Python dict
 * (PYOBJ, logconfig_dict).  From a Python config file `obj` is the object
 * itself (a new reference, a PyObject *), checked when it was set.  From an
 * INI file only `spec` is set ("module:callable"); nw__config_py_resolve()
 * imports it in the arbiter, checks its arity and fills `obj`.  The hooks
 * issue calls `obj`; `arity` is its number of positional parameters
 * (post_request takes 2, 3 or 4).  `text` is how --print-config shows it.
 */
typedef struct nw_pyref {
    char *spec;
    void *obj;
    char *text;
    int arity;
} nw_pyref;

enum nw_setting_type {
    NW_T_INT,
    NW_T_DURATION, /* whole seconds ("30" or "30s") */
    NW_T_BOOL,
    NW_T_STR,
    NW_T_CHOICE,   /* a STR from `choices` */
    NW_T_LIST,     /* repeatable flag: each use appends one item */
    NW_T_CSV,      /* one comma-separated value: "a, b" -> [a, b] */
    NW_T_DICT,     /* "KEY=VALUE, KEY=VALUE" (a dict in a Python config) */
    NW_T_CALLABLE, /* a server hook: Python config or INI "module:callable" */
    NW_T_PYOBJ,    /* a Python object (a dict), from a Python config only */
};

/* Extra validation of a value (of each item of a LIST or CSV). */
enum nw_setting_check {
    NW_CHECK_NONE,
    NW_CHECK_BIND,        /* a bind address (sockets.c) */
    NW_CHECK_DIR,         /* an existing directory, stored absolute */
    NW_CHECK_FILE,        /* an existing file */
    NW_CHECK_KEYVAL,      /* KEY=VALUE */
    NW_CHECK_APPSPEC,     /* MODULE[:VARIABLE] */
    NW_CHECK_NETWORK,     /* an IP address, a network (CIDR) or '*' */
    NW_CHECK_STATSD,      /* HOST[:PORT] or unix:PATH */
    NW_CHECK_SYSLOG,      /* unix://PATH[#dgram|stream], udp:// or tcp:// */
    NW_CHECK_USER,        /* a user name or id: stored as the id */
    NW_CHECK_GROUP,       /* a group name or id: stored as the id */
};

/* Row flags. */
#define NW_F_PENDING     0x0001u /* parsed and validated; its behaviour is
                                    not wired yet: warned about when set */
#define NW_F_NOOP        0x0002u /* accepted, no effect by design (note) */
#define NW_F_REFUSED     0x0004u /* not supported: any value but the
                                    default is an error (note says why) */
#define NW_F_STORE_FALSE 0x0008u /* BOOL flag that turns it off */
#define NW_F_OPTARG      0x0010u /* --flag [VALUE]: bare means "auto" */
#define NW_F_AUTOBASE    0x0020u /* INT as Python's int(x, 0); 0NNN octal */
#define NW_F_ICASE       0x0040u /* CHOICE compared case-insensitively */
#define NW_F_NARWHAL     0x0080u /* narwhal's own, not Gunicorn's */

/* Where a value came from, lowest precedence first: a value is stored only
   if its source is at least as high as the one that set the current value
   (Gunicorn: defaults < config file < GUNICORN_CMD_ARGS < command line;
   NARWHAL_CMD_ARGS sits above GUNICORN_CMD_ARGS). */
enum nw_setting_source {
    NW_SRC_DEFAULT,
    NW_SRC_FILE,
    NW_SRC_ENV_GUNICORN,
    NW_SRC_ENV,
    NW_SRC_CLI,
};

#define NW_CTYPE_INT long long
#define NW_CTYPE_DURATION long long
#define NW_CTYPE_BOOL int
#define NW_CTYPE_STR char *
#define NW_CTYPE_CHOICE char *
#define NW_CTYPE_LIST nw_strlist
#define NW_CTYPE_CSV nw_strlist
#define NW_CTYPE_DICT nw_strmap
#define NW_CTYPE_CALLABLE nw_pyref
#define NW_CTYPE_PYOBJ nw_pyref

enum nw_setting_id {
#define NW_SETTING(name, type, ...) NW_S_##name,
#include "config/settings.def"
#undef NW_SETTING
    NW_SETTING_COUNT
};

/* The public, opaque nw_config is this struct.  Every row of settings.def
   is a field of the row's name and C type (NW_CTYPE_*). */
struct nw_config {
#define NW_SETTING(name, type, ...) NW_CTYPE_##type name;
#include "config/settings.def"
#undef NW_SETTING
    /* the positional APP_MODULE (or wsgi_app) */
    char *app_module;
    /* unique per nw__settings_init in this process: tells these settings
       from others later made at the same address */
    unsigned long serial;
    unsigned char source[NW_SETTING_COUNT];
    /* where each value came from, for messages: "command line",
       "GUNICORN_CMD_ARGS", "conf.py", "narwhal.ini:12"; NULL for a
       default */
    char *origin[NW_SETTING_COUNT];
    /* a default taken from the environment that did not parse
       (WEB_CONCURRENCY=many): reported by main; "" if none */
    char env_error[512];
};
typedef struct nw_config nw_settings;

typedef struct nw_setting_def {
    const char *name;
    enum nw_setting_type type;
    const char *section;
    int short_flag;            /* one-letter flag, or 0 */
    const char *long_flags;    /* "name|alias" without "--"; NULL: none */
    const char *default_value; /* text form; NULL: None */
    const char *doc_default;   /* the docs' wording of a computed default */
    const char *meta;          /* the argument's name in --help; a hook's
                                  parameters */
    long long min, max;        /* INT range; CALLABLE arity range */
    const char *choices;       /* CHOICE: '|'-separated */
    enum nw_setting_check check;
    unsigned flags;            /* NW_F_* */
    const char *note;          /* why REFUSED/NOOP/PENDING */
    const char *help;
    size_t offset;
} nw_setting_def;

extern const nw_setting_def nw__setting_defs[NW_SETTING_COUNT];

/* Fill every setting with its default, including the ones Gunicorn takes
   from the environment (PORT, WEB_CONCURRENCY, FORWARDED_ALLOW_IPS,
   SENDFILE) and the process (cwd, euid, egid). */
void nw__settings_init(nw_settings *s);
void nw__settings_free(nw_settings *s);

/* Called for every nw_pyref before it is freed (config_py.c drops its
   Python reference); NULL while no Python object was ever stored. */
extern void (*nw__pyref_release)(nw_pyref *ref);

const nw_setting_def *nw__setting_find(const char *name);

/* The setting whose name is closest to `name` (case-insensitive, at most
   a couple of edits away), or NULL: for "did you mean ...?". */
const nw_setting_def *nw__setting_suggest(const char *name);

/* Optimal string alignment distance, case-insensitive (SIZE_MAX for
   strings over 64 bytes), and how far a suggestion may be for a name of
   this length. */
size_t nw__edit_distance(const char *a, const char *b);
size_t nw__suggest_limit(const char *name);

/* Set one setting from its text form, as given on the command line or in
   an INI file.  The value is always validated; it is stored only if src is
   at least the source of the current value: a higher source replaces, the
   same source replaces a scalar and appends to a LIST.  NULL means None (a
   STR unset, a LIST emptied).  `origin` names the source for messages.  On
   error fills err with one sentence that quotes the value (without the
   setting's name) and returns NW_ERROR. */
int nw__setting_set(nw_settings *s, const nw_setting_def *d,
                    const char *value, enum nw_setting_source src,
                    const char *origin, char *err, size_t errlen);

/* Empty a LIST/CSV/DICT at this source (a Python `bind = []`). */
int nw__setting_clear(nw_settings *s, const nw_setting_def *d,
                      enum nw_setting_source src, const char *origin,
                      char *err, size_t errlen);

/* Store a DICT from parallel arrays (a Python dict). */
int nw__setting_set_map(nw_settings *s, const nw_setting_def *d,
                        const char *const *keys, const char *const *values,
                        size_t n, enum nw_setting_source src,
                        const char *origin, char *err, size_t errlen);

/* Store a CALLABLE or PYOBJ; takes ownership of ref's members. */
int nw__setting_set_pyref(nw_settings *s, const nw_setting_def *d,
                          nw_pyref *ref, enum nw_setting_source src,
                          const char *origin, char *err, size_t errlen);

/* Is the setting's current value its default (compared typed)? */
int nw__setting_is_default(const nw_settings *s, const nw_setting_def *d);

/* Write the value as Gunicorn's --print-config shows it (Python's str():
   True, None, ['a', 'b'], {'K': 'v'}, <qualname()>). */
void nw__setting_format(const nw_settings *s, const nw_setting_def *d,
                        FILE *out);

/* Every setting, "name = value", names padded, sorted (--print-config). */
void nw__settings_print(const nw_settings *s, FILE *out);

/* A value of a setting, by address. */
#define NW_SETTING_PTR(s, d, T)                                               \
    ((T *) (void *) ((char *) (s) + (d)->offset))
#define NW_SETTING_CPTR(s, d, T)                                              \
    ((const T *) (const void *) ((const char *) (s) + (d)->offset))

#endif
