/* The settings: one table (settings.def), one struct, typed setters. */
#ifndef NW_SETTINGS_H
#define NW_SETTINGS_H

#include <stddef.h>

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

enum nw_setting_type {
    NW_T_INT,
    NW_T_BOOL,
    NW_T_STR,
    NW_T_LIST,   /* repeatable flag: each use appends one item */
    NW_T_CHOICE,
    NW_T_CSV,    /* one comma-separated value: "a, b" -> [a, b] */
    NW_T_DICT,   /* "KEY=VALUE, KEY=VALUE" (a dict in a Python config) */
};

/* Where a value came from, lowest precedence first. */
enum nw_setting_source {
    NW_SRC_DEFAULT,
    NW_SRC_FILE,
    NW_SRC_ENV,
    NW_SRC_CLI,
};

#define NW_CTYPE_INT long long
#define NW_CTYPE_BOOL int
#define NW_CTYPE_STR char *
#define NW_CTYPE_LIST nw_strlist
#define NW_CTYPE_CHOICE char *
#define NW_CTYPE_CSV nw_strlist
#define NW_CTYPE_DICT nw_strmap

enum nw_setting_id {
#define NW_SETTING(name, type, ...) NW_S_##name,
#include "settings.def"
#undef NW_SETTING
    NW_SETTING_COUNT
};

/* The public, opaque nw_config is this struct. */
struct nw_config {
#define NW_SETTING(name, type, ...) NW_CTYPE_##type name;
#include "settings.def"
#undef NW_SETTING
    /* the positional APP_MODULE */
    char *app_module;
    unsigned char source[NW_SETTING_COUNT];
};
typedef struct nw_config nw_settings;

typedef struct nw_setting_def {
    const char *name;
    enum nw_setting_type type;
    const char *section;
    int short_flag;
    const char *long_flags;
    const char *default_value;
    const char *meta;
    long long min;
    long long max;
    const char *choices;
    const char *help;
    size_t offset;
} nw_setting_def;

extern const nw_setting_def nw__setting_defs[NW_SETTING_COUNT];

/* Fill every setting with its default. */
void nw__settings_init(nw_settings *s);
void nw__settings_free(nw_settings *s);

const nw_setting_def *nw__setting_find(const char *name);

/* Set one setting from its text form.  A LIST given several times by the
   same source accumulates; a higher source replaces what a lower one set.
   On error fills err with one sentence (without the setting's name) and
   returns NW_ERROR. */
int nw__setting_set(nw_settings *s, const nw_setting_def *d,
                    const char *value, enum nw_setting_source src,
                    char *err, size_t errlen);

#endif
