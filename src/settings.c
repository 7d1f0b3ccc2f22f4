#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "memory.h"
#include "settings.h"

const nw_setting_def nw__setting_defs[NW_SETTING_COUNT] = {
#define NW_SETTING(name, type, section, sflag, lflags, dflt, meta, min, max,  \
                   choices, help)                                            \
    {#name, NW_T_##type, section, sflag, lflags, dflt, meta, min, max,       \
     choices, help, offsetof(nw_settings, name)},
#include "settings.def"
#undef NW_SETTING
};

#define FIELD(s, d, T) ((T *) (void *) ((char *) (s) + (d)->offset))

static void
strlist_clear(nw_strlist *l)
{
    for (size_t i = 0; i < l->count; i++) {
        free(l->items[i]);
    }
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

static void
strlist_append(nw_strlist *l, const char *v)
{
    l->items = nw__xrealloc(l->items, (l->count + 1) * sizeof(char *));
    l->items[l->count++] = nw__xstrdup(v);
}

static void
strmap_clear(nw_strmap *m)
{
    for (size_t i = 0; i < m->count; i++) {
        free(m->keys[i]);
        free(m->values[i]);
    }
    free(m->keys);
    free(m->values);
    memset(m, 0, sizeof(*m));
}

/* The next comma-separated item of *p, trimmed of spaces and tabs. */
static int
next_item(const char **p, const char **item, size_t *len)
{
    const char *s = *p, *end;

    while (*s == ' ' || *s == '\t' || *s == ',') {
        s++;
    }
    if (*s == '\0') {
        return 0;
    }
    end = strchr(s, ',');
    if (end == NULL) {
        end = s + strlen(s);
    }
    *p = end;
    while (end > s && (end[-1] == ' ' || end[-1] == '\t')) {
        end--;
    }
    *item = s;
    *len = (size_t) (end - s);
    return 1;
}

static int
parse_csv(const char *v, nw_strlist *l)
{
    const char *item;
    size_t len;

    strlist_clear(l);
    while (next_item(&v, &item, &len)) {
        char *copy = nw__xstrndup(item, len);
        strlist_append(l, copy);
        free(copy);
    }
    return 0;
}

static int
parse_dict(const char *v, nw_strmap *m, char *err, size_t errlen)
{
    const char *item;
    size_t len;
    nw_strmap out = {NULL, NULL, 0};

    while (next_item(&v, &item, &len)) {
        const char *eq = memchr(item, '=', len);
        size_t klen;
        if (eq == NULL || eq == item) {
            snprintf(err, errlen, "invalid mapping item '%.*s' (write "
                                  "KEY=VALUE, several separated by commas)",
                     (int) len, item);
            strmap_clear(&out);
            return -1;
        }
        klen = (size_t) (eq - item);
        while (klen > 0 && (item[klen - 1] == ' ' || item[klen - 1] == '\t')) {
            klen--;
        }
        out.keys = nw__xrealloc(out.keys, (out.count + 1) * sizeof(char *));
        out.values = nw__xrealloc(out.values,
                                  (out.count + 1) * sizeof(char *));
        out.keys[out.count] = nw__xstrndup(item, klen);
        eq++;
        while (*eq == ' ' || *eq == '\t') {
            eq++;
        }
        out.values[out.count] = nw__xstrndup(eq, (size_t) (item + len - eq));
        out.count++;
    }
    strmap_clear(m);
    *m = out;
    return 0;
}

static int
parse_int(const char *v, long long *out)
{
    char *end;

    errno = 0;
    while (*v == ' ' || *v == '\t') {
        v++;
    }
    if (*v == '\0') {
        return -1;
    }
    *out = strtoll(v, &end, 10);
    while (*end == ' ' || *end == '\t') {
        end++;
    }
    return (errno != 0 || *end != '\0') ? -1 : 0;
}

static int
parse_bool(const char *v, int *out)
{
    static const char *yes[] = {"true", "yes", "on", "1", "y", "t"};
    static const char *no[] = {"false", "no", "off", "0", "n", "f"};

    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

static int
choice_ok(const char *choices, const char *v)
{
    size_t n = strlen(v);
    const char *p = choices;

    while (p != NULL && *p != '\0') {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t) (bar - p) : strlen(p);
        if (len == n && strncmp(p, v, n) == 0) {
            return 1;
        }
        p = bar ? bar + 1 : NULL;
    }
    return 0;
}

int
nw__setting_set(nw_settings *s, const nw_setting_def *d, const char *value,
                enum nw_setting_source src, char *err, size_t errlen)
{
    size_t idx = (size_t) (d - nw__setting_defs);

    switch (d->type) {
    case NW_T_INT: {
        long long v;
        if (value == NULL || parse_int(value, &v) != 0) {
            snprintf(err, errlen, "invalid int value: '%s'",
                     value ? value : "");
            return NW_ERROR;
        }
        if (v < d->min || v > d->max) {
            snprintf(err, errlen, "%lld is out of range (%lld to %lld)", v,
                     d->min, d->max);
            return NW_ERROR;
        }
        *FIELD(s, d, long long) = v;
        break;
    }
    case NW_T_BOOL: {
        int v;
        if (value == NULL || parse_bool(value, &v) != 0) {
            snprintf(err, errlen,
                     "invalid boolean value: '%s' (use true or false)",
                     value ? value : "");
            return NW_ERROR;
        }
        *FIELD(s, d, int) = v;
        break;
    }
    case NW_T_CHOICE:
        if (value == NULL || !choice_ok(d->choices, value)) {
            char list[256];
            size_t j = 0;
            for (const char *p = d->choices; *p && j + 4 < sizeof(list);
                 p++) {
                if (*p == '|') {
                    list[j++] = ',';
                    list[j++] = ' ';
                } else {
                    list[j++] = *p;
                }
            }
            list[j] = '\0';
            snprintf(err, errlen, "invalid choice: '%s' (choose from %s)",
                     value ? value : "", list);
            return NW_ERROR;
        }
        /* fall through */
    case NW_T_STR: {
        char **f = FIELD(s, d, char *);
        free(*f);
        *f = value ? nw__xstrdup(value) : NULL;
        break;
    }
    case NW_T_CSV:
        parse_csv(value ? value : "", FIELD(s, d, nw_strlist));
        break;
    case NW_T_DICT:
        if (parse_dict(value ? value : "", FIELD(s, d, nw_strmap), err,
                       errlen) != 0) {
            return NW_ERROR;
        }
        break;
    case NW_T_LIST: {
        nw_strlist *l = FIELD(s, d, nw_strlist);
        if (s->source[idx] != (unsigned char) src) {
            strlist_clear(l);
        }
        if (value != NULL) {
            strlist_append(l, value);
        }
        break;
    }
    }
    s->source[idx] = (unsigned char) src;
    return NW_OK;
}

void
nw__settings_init(nw_settings *s)
{
    char err[256];

    memset(s, 0, sizeof(*s));
    for (size_t i = 0; i < NW_SETTING_COUNT; i++) {
        const nw_setting_def *d = &nw__setting_defs[i];
        if (d->default_value == NULL) {
            continue;
        }
        if (nw__setting_set(s, d, d->default_value, NW_SRC_DEFAULT, err,
                            sizeof(err)) != NW_OK) {
            /* A bad default is a bug in settings.def, caught by the unit
               tests; never user input. */
            fprintf(stderr, "narwhal: bad default for %s: %s\n", d->name,
                    err);
            abort();
        }
    }
}

void
nw__settings_free(nw_settings *s)
{
    for (size_t i = 0; i < NW_SETTING_COUNT; i++) {
        const nw_setting_def *d = &nw__setting_defs[i];
        if (d->type == NW_T_LIST || d->type == NW_T_CSV) {
            strlist_clear(FIELD(s, d, nw_strlist));
        } else if (d->type == NW_T_DICT) {
            strmap_clear(FIELD(s, d, nw_strmap));
        } else if (d->type == NW_T_STR || d->type == NW_T_CHOICE) {
            free(*FIELD(s, d, char *));
        }
    }
    free(s->app_module);
    memset(s, 0, sizeof(*s));
}

const nw_setting_def *
nw__setting_find(const char *name)
{
    for (size_t i = 0; i < NW_SETTING_COUNT; i++) {
        if (strcmp(nw__setting_defs[i].name, name) == 0) {
            return &nw__setting_defs[i];
        }
    }
    return NULL;
}
