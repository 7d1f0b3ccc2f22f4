#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/appspec.h"
#include "base/memory.h"
#include "config/settings.h"
#include "os/sockets.h"

const nw_setting_def nw__setting_defs[NW_SETTING_COUNT] = {
#define NW_SETTING(name_, type_, section_, ...)                               \
    {.name = #name_, .type = NW_T_##type_, .section = section_, __VA_ARGS__,  \
     .offset = offsetof(nw_settings, name_)},
#include "config/settings.def"
#undef NW_SETTING
};

void (*nw__pyref_release)(nw_pyref *ref);

/* One parsed value, before it is stored: the member matching the row's
   C type, at offset 0 like the struct field it will replace. */
typedef union nw_value {
    long long i;
    int b;
    char *str;
    nw_strlist list;
    nw_strmap map;
    nw_pyref ref;
} nw_value;

/* ------------------------------------------------------------------ */
/* Containers */

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
strlist_append_n(nw_strlist *l, const char *v, size_t n)
{
    l->items = nw__xrealloc(l->items, (l->count + 1) * sizeof(char *));
    l->items[l->count++] = nw__xstrndup(v, n);
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

static void
strmap_add(nw_strmap *m, const char *k, size_t klen, const char *v,
           size_t vlen)
{
    m->keys = nw__xrealloc(m->keys, (m->count + 1) * sizeof(char *));
    m->values = nw__xrealloc(m->values, (m->count + 1) * sizeof(char *));
    m->keys[m->count] = nw__xstrndup(k, klen);
    m->values[m->count] = nw__xstrndup(v, vlen);
    m->count++;
}

static void
pyref_clear(nw_pyref *r)
{
    if (r->obj != NULL && nw__pyref_release != NULL) {
        nw__pyref_release(r);
    }
    free(r->spec);
    free(r->text);
    memset(r, 0, sizeof(*r));
}

static size_t value_size(const nw_setting_def *d);

/* Free a value (a nw_value or a struct field: only the row's C type is
   touched). */
static void
value_free(const nw_setting_def *d, nw_value *v)
{
    switch (d->type) {
    case NW_T_STR:
    case NW_T_CHOICE:
        free(v->str);
        break;
    case NW_T_LIST:
    case NW_T_CSV:
        strlist_clear(&v->list);
        break;
    case NW_T_DICT:
        strmap_clear(&v->map);
        break;
    case NW_T_CALLABLE:
    case NW_T_PYOBJ:
        pyref_clear(&v->ref);
        break;
    default:
        break;
    }
    memset(v, 0, value_size(d));
}

/* The field's C type, so a stored value moves as a whole. */
static size_t
value_size(const nw_setting_def *d)
{
    switch (d->type) {
    case NW_T_INT:
    case NW_T_DURATION:
        return sizeof(long long);
    case NW_T_BOOL:
        return sizeof(int);
    case NW_T_STR:
    case NW_T_CHOICE:
        return sizeof(char *);
    case NW_T_LIST:
    case NW_T_CSV:
        return sizeof(nw_strlist);
    case NW_T_DICT:
        return sizeof(nw_strmap);
    case NW_T_CALLABLE:
    case NW_T_PYOBJ:
        return sizeof(nw_pyref);
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Text */

static int
is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* The next comma-separated item of *p, trimmed of blanks. */
static int
next_item(const char **p, const char **item, size_t *len)
{
    const char *s = *p, *end;

    while (is_blank(*s) || *s == ',') {
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
    while (end > s && is_blank(end[-1])) {
        end--;
    }
    *item = s;
    *len = (size_t) (end - s);
    return 1;
}

static char *
strip_dup(const char *v)
{
    const char *end;

    while (is_blank(*v)) {
        v++;
    }
    end = v + strlen(v);
    while (end > v && is_blank(end[-1])) {
        end--;
    }
    return nw__xstrndup(v, (size_t) (end - v));
}

/* ------------------------------------------------------------------ */
/* Typed parsers: err gets one sentence quoting the value. */

static int
parse_int(const nw_setting_def *d, const char *v, long long *out, char *err,
          size_t errlen)
{
    char *copy = strip_dup(v), *end;
    const char *p = copy;
    int base = 10;

    if ((d->flags & NW_F_AUTOBASE) && p[0] == '0' && p[1] != '\0') {
        /* Gunicorn's auto_int: 0o22, 0x12, 0b10, and 022 is octal too */
        base = 8;
        p++;
        if (*p == 'o' || *p == 'O') {
            p++;
        } else if (*p == 'x' || *p == 'X') {
            p++;
            base = 16;
        } else if (*p == 'b' || *p == 'B') {
            p++;
            base = 2;
        }
        if (*p == '-' || *p == '+') {
            goto bad;
        }
    }
    if (*p == '\0') {
        goto bad;
    }
    errno = 0;
    *out = strtoll(p, &end, base);
    if (errno != 0 || *end != '\0') {
        goto bad;
    }
    free(copy);
    if (*out < d->min || *out > d->max) {
        snprintf(err, errlen, "%lld is out of range (%lld to %lld)", *out,
                 d->min, d->max);
        return NW_ERROR;
    }
    return NW_OK;
bad:
    free(copy);
    snprintf(err, errlen, "invalid int value: '%s'", v);
    return NW_ERROR;
}

static int
parse_duration(const nw_setting_def *d, const char *v, long long *out,
               char *err, size_t errlen)
{
    char *copy = strip_dup(v);
    size_t n = strlen(copy);
    int rc;

    /* "30s" reads well in an INI file */
    if (n > 1 && copy[n - 1] == 's' && isdigit((unsigned char) copy[n - 2])) {
        copy[n - 1] = '\0';
    }
    rc = parse_int(d, copy, out, err, errlen);
    if (rc != NW_OK && strncmp(err, "invalid int", 11) == 0) {
        snprintf(err, errlen,
                 "invalid duration: '%s' (a whole number of seconds, e.g. 30)",
                 v);
    }
    free(copy);
    return rc;
}

static int
parse_bool(const char *v, int *out)
{
    static const char *yes[] = {"true", "yes", "on", "1", "y", "t"};
    static const char *no[] = {"false", "no", "off", "0", "n", "f"};
    char *copy = strip_dup(v);
    int rc = -1;

    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]) && rc != 0; i++) {
        if (strcasecmp(copy, yes[i]) == 0) {
            *out = 1;
            rc = 0;
        } else if (strcasecmp(copy, no[i]) == 0) {
            *out = 0;
            rc = 0;
        }
    }
    free(copy);
    return rc;
}

static const char *
choice_match(const nw_setting_def *d, const char *v)
{
    size_t n = strlen(v);
    const char *p = d->choices;

    while (p != NULL && *p != '\0') {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t) (bar - p) : strlen(p);
        if (len == n
            && ((d->flags & NW_F_ICASE) ? strncasecmp(p, v, n)
                                        : strncmp(p, v, n))
                   == 0) {
            return p;
        }
        p = bar ? bar + 1 : NULL;
    }
    return NULL;
}

static void
choice_list(const nw_setting_def *d, char *list, size_t len)
{
    size_t j = 0;

    for (const char *p = d->choices; *p && j + 4 < len; p++) {
        if (*p == '|') {
            list[j++] = ',';
            list[j++] = ' ';
        } else {
            list[j++] = *p;
        }
    }
    list[j] = '\0';
}

/* ------------------------------------------------------------------ */
/* Checks of one string value; may replace *v (normalised). */

static int
check_network(const char *v, char *err, size_t errlen)
{
    char host[INET6_ADDRSTRLEN + 8];
    const char *slash = strchr(v, '/');
    size_t n = slash ? (size_t) (slash - v) : strlen(v);
    unsigned char buf[sizeof(struct in6_addr)];
    int family = 0, maxbits;

    if (strcmp(v, "*") == 0) {
        return NW_OK;
    }
    if (n < sizeof(host)) {
        memcpy(host, v, n);
        host[n] = '\0';
        if (inet_pton(AF_INET, host, buf) == 1) {
            family = AF_INET;
        } else if (inet_pton(AF_INET6, host, buf) == 1) {
            family = AF_INET6;
        }
    }
    if (family == 0) {
        snprintf(err, errlen,
                 "'%s' is not an IP address, a network (10.0.0.0/8) or '*'",
                 v);
        return NW_ERROR;
    }
    maxbits = family == AF_INET ? 32 : 128;
    if (slash != NULL) {
        char *end;
        long bits;
        errno = 0;
        bits = strtol(slash + 1, &end, 10);
        if (slash[1] == '\0' || *end != '\0' || errno != 0 || bits < 0
            || bits > maxbits) {
            snprintf(err, errlen, "'%s': the prefix length must be 0 to %d",
                     v, maxbits);
            return NW_ERROR;
        }
    }
    return NW_OK;
}

static int
check_hostport(const char *what, const char *hp, int need_port, char *err,
               size_t errlen)
{
    nw_bind_addr a;
    char inner[256];

    if (nw__bind_parse(hp, &a, inner, sizeof(inner)) != NW_OK
        || a.kind != NW_ADDR_TCP || (need_port && strchr(hp, ':') == NULL)) {
        snprintf(err, errlen, "'%s' is not a valid %s", hp, what);
        return NW_ERROR;
    }
    return NW_OK;
}

static int
check_value(const nw_setting_def *d, char **v, char *err, size_t errlen)
{
    const char *s = *v;

    switch (d->check) {
    case NW_CHECK_NONE:
    case NW_CHECK_USER:
    case NW_CHECK_GROUP:
        return NW_OK;
    case NW_CHECK_BIND: {
        nw_bind_addr a;
        return nw__bind_parse(s, &a, err, errlen);
    }
    case NW_CHECK_DIR: {
        char abs[PATH_MAX];
        struct stat st;
        const char *why = NULL;
        if (*s == '\0') {
            why = "empty path";
        } else if (stat(s, &st) != 0) {
            why = strerror(errno);
        } else if (!S_ISDIR(st.st_mode)) {
            why = "not a directory";
        } else if (realpath(s, abs) == NULL) {
            why = strerror(errno);
        }
        if (why != NULL) {
            snprintf(err, errlen, "can't chdir to '%s': %s", s, why);
            return NW_ERROR;
        }
        free(*v);
        *v = nw__xstrdup(abs);
        return NW_OK;
    }
    case NW_CHECK_FILE:
        if (access(s, F_OK) != 0) {
            snprintf(err, errlen, "file '%s' does not exist", s);
            return NW_ERROR;
        }
        return NW_OK;
    case NW_CHECK_KEYVAL:
        if (strchr(s, '=') == NULL || s[0] == '=') {
            snprintf(err, errlen, "'%s' is not KEY=VALUE", s);
            return NW_ERROR;
        }
        return NW_OK;
    case NW_CHECK_APPSPEC: {
        nw_appspec spec;
        return nw__appspec_parse(s, &spec, err, errlen);
    }
    case NW_CHECK_NETWORK:
        return check_network(s, err, errlen);
    case NW_CHECK_STATSD:
        if (strncmp(s, "unix:", 5) == 0) {
            const char *path = s + 5;
            if (strncmp(path, "//", 2) == 0) {
                path += 2;
            }
            if (*path != '\0') {
                return NW_OK;
            }
        } else if (check_hostport("address", s, 0, err, errlen) == NW_OK) {
            return NW_OK;
        }
        snprintf(err, errlen,
                 "'%s' is not a StatsD address (HOST:PORT or unix://PATH)",
                 s);
        return NW_ERROR;
    case NW_CHECK_SYSLOG:
        if (strncmp(s, "unix://", 7) == 0 && s[7] != '\0' && s[7] != '#') {
            const char *hash = strchr(s, '#');
            if (hash == NULL || strcmp(hash, "#stream") == 0
                || strcmp(hash, "#dgram") == 0) {
                return NW_OK;
            }
        } else if ((strncmp(s, "udp://", 6) == 0
                    || strncmp(s, "tcp://", 6) == 0)
                   && check_hostport("address", s + 6, 1, err, errlen)
                          == NW_OK) {
            return NW_OK;
        }
        snprintf(err, errlen,
                 "'%s' is not a syslog address (unix://PATH[#dgram], "
                 "udp://HOST:PORT or tcp://HOST:PORT)",
                 s);
        return NW_ERROR;
    }
    return NW_OK;
}

/* user and group: a number, or a name looked up as Gunicorn does */
static int
parse_id(const nw_setting_def *d, const char *v, long long *out, char *err,
         size_t errlen)
{
    char *name = strip_dup(v);
    int rc = NW_OK;

    if (*name != '\0' && strspn(name, "0123456789") == strlen(name)) {
        rc = parse_int(d, name, out, err, errlen);
    } else if (d->check == NW_CHECK_USER) {
        struct passwd *pw = *name ? getpwnam(name) : NULL;
        if (pw == NULL) {
            snprintf(err, errlen, "no such user: '%s'", name);
            rc = NW_ERROR;
        } else {
            *out = (long long) pw->pw_uid;
        }
    } else {
        struct group *gr = *name ? getgrnam(name) : NULL;
        if (gr == NULL) {
            snprintf(err, errlen, "no such group: '%s'", name);
            rc = NW_ERROR;
        } else {
            *out = (long long) gr->gr_gid;
        }
    }
    free(name);
    return rc;
}

/* "module:callable" (INI) or "module.callable" (Gunicorn's string form). */
static int
check_hook_spec(const char *s, char *err, size_t errlen)
{
    const char *colon = strchr(s, ':');
    const char *dot = strrchr(s, '.');

    if ((colon != NULL && colon != s && colon[1] != '\0'
         && strchr(colon + 1, ':') == NULL)
        || (colon == NULL && dot != NULL && dot != s && dot[1] != '\0')) {
        if (strpbrk(s, " \t()") == NULL) {
            return NW_OK;
        }
    }
    snprintf(err, errlen,
             "'%s' is not an import string: write module:callable (or "
             "module.callable)",
             s);
    return NW_ERROR;
}

/* Parse a whole value (one item for a LIST) into v; validated. */
static int
parse_value(const nw_setting_def *d, const char *text, nw_value *v,
            char *err, size_t errlen)
{
    memset(v, 0, sizeof(*v));
    switch (d->type) {
    case NW_T_INT:
        if (d->check == NW_CHECK_USER || d->check == NW_CHECK_GROUP) {
            return parse_id(d, text, &v->i, err, errlen);
        }
        return parse_int(d, text, &v->i, err, errlen);
    case NW_T_DURATION:
        return parse_duration(d, text, &v->i, err, errlen);
    case NW_T_BOOL:
        if (parse_bool(text, &v->b) != 0) {
            snprintf(err, errlen,
                     "invalid boolean value: '%s' (use true or false)", text);
            return NW_ERROR;
        }
        return NW_OK;
    case NW_T_CHOICE: {
        char *t = strip_dup(text);
        const char *hit;
        int b;
        if ((d->flags & NW_F_OPTARG) && parse_bool(t, &b) == 0) {
            /* --proxy-protocol true (Gunicorn < 24.1: a boolean) */
            free(t);
            t = nw__xstrdup(b ? "auto" : "off");
        }
        hit = choice_match(d, t);
        if (hit == NULL) {
            char list[256];
            choice_list(d, list, sizeof(list));
            snprintf(err, errlen, "invalid choice: '%s' (choose from %s)",
                     t, list);
            free(t);
            return NW_ERROR;
        }
        /* the table's spelling: "INFO" is stored as "info" */
        v->str = nw__xstrndup(hit, strcspn(hit, "|"));
        free(t);
        return NW_OK;
    }
    case NW_T_STR:
        v->str = strip_dup(text);
        if (check_value(d, &v->str, err, errlen) != NW_OK) {
            value_free(d, v);
            return NW_ERROR;
        }
        return NW_OK;
    case NW_T_LIST:
        v->list.items = nw__xmalloc(sizeof(char *));
        v->list.items[0] = strip_dup(text);
        v->list.count = 1;
        if (check_value(d, &v->list.items[0], err, errlen) != NW_OK) {
            value_free(d, v);
            return NW_ERROR;
        }
        return NW_OK;
    case NW_T_CSV: {
        const char *p = text, *item;
        size_t len;
        while (next_item(&p, &item, &len)) {
            strlist_append_n(&v->list, item, len);
            if (check_value(d, &v->list.items[v->list.count - 1], err,
                            errlen)
                != NW_OK) {
                value_free(d, v);
                return NW_ERROR;
            }
        }
        return NW_OK;
    }
    case NW_T_DICT: {
        const char *p = text, *item;
        size_t len;
        while (next_item(&p, &item, &len)) {
            const char *eq = memchr(item, '=', len);
            size_t klen;
            const char *val;
            if (eq == NULL || eq == item) {
                snprintf(err, errlen,
                         "invalid mapping item '%.*s' (write KEY=VALUE, "
                         "several separated by commas)",
                         (int) len, item);
                value_free(d, v);
                return NW_ERROR;
            }
            klen = (size_t) (eq - item);
            while (klen > 0 && is_blank(item[klen - 1])) {
                klen--;
            }
            val = eq + 1;
            while (is_blank(*val) && val < item + len) {
                val++;
            }
            strmap_add(&v->map, item, klen, val,
                       (size_t) (item + len - val));
        }
        return NW_OK;
    }
    case NW_T_CALLABLE: {
        char *t = strip_dup(text);
        if (check_hook_spec(t, err, errlen) != NW_OK) {
            free(t);
            return NW_ERROR;
        }
        v->ref.spec = t;
        return NW_OK;
    }
    case NW_T_PYOBJ:
        snprintf(err, errlen,
                 "a Python dict can only be set in a Python config file");
        return NW_ERROR;
    }
    return NW_ERROR;
}

/* ------------------------------------------------------------------ */
/* Python's str() of a value, for --print-config. */

static void
repr_str(const char *s, FILE *out)
{
    char q = (strchr(s, '\'') != NULL && strchr(s, '"') == NULL) ? '"'
                                                                 : '\'';

    fputc(q, out);
    for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
        if (*p == '\\' || *p == (unsigned char) q) {
            fputc('\\', out);
            fputc(*p, out);
        } else if (*p == '\n') {
            fputs("\\n", out);
        } else if (*p == '\r') {
            fputs("\\r", out);
        } else if (*p == '\t') {
            fputs("\\t", out);
        } else if (*p < 0x20 || *p == 0x7f) {
            fprintf(out, "\\x%02x", *p);
        } else {
            fputc(*p, out);
        }
    }
    fputc(q, out);
}

static void
format_value(const nw_setting_def *d, const void *field, FILE *out)
{
    switch (d->type) {
    case NW_T_INT:
    case NW_T_DURATION:
        fprintf(out, "%lld", *(const long long *) field);
        break;
    case NW_T_BOOL:
        fputs(*(const int *) field ? "True" : "False", out);
        break;
    case NW_T_STR:
    case NW_T_CHOICE: {
        const char *v = *(char *const *) field;
        fputs(v ? v : "None", out);
        break;
    }
    case NW_T_LIST:
    case NW_T_CSV: {
        const nw_strlist *l = field;
        fputc('[', out);
        for (size_t i = 0; i < l->count; i++) {
            if (i > 0) {
                fputs(", ", out);
            }
            repr_str(l->items[i], out);
        }
        fputc(']', out);
        break;
    }
    case NW_T_DICT: {
        const nw_strmap *m = field;
        fputc('{', out);
        for (size_t i = 0; i < m->count; i++) {
            if (i > 0) {
                fputs(", ", out);
            }
            repr_str(m->keys[i], out);
            fputs(": ", out);
            repr_str(m->values[i], out);
        }
        fputc('}', out);
        break;
    }
    case NW_T_CALLABLE:
    case NW_T_PYOBJ: {
        const nw_pyref *r = field;
        if (r->text != NULL) {
            fputs(r->text, out);
        } else if (r->spec != NULL) {
            /* not imported yet: its name */
            const char *c = strrchr(r->spec, ':');
            fprintf(out, "<%s()>", c ? c + 1 : r->spec);
        } else if (d->type == NW_T_CALLABLE) {
            fprintf(out, "<%s()>", d->default_value);
        } else {
            fputs(d->default_value ? d->default_value : "None", out);
        }
        break;
    }
    }
}

/* The formatted value, malloc'ed (for comparisons). */
static char *
format_dup(const nw_setting_def *d, const void *field)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    if (f == NULL) {
        return nw__xstrdup("");
    }
    format_value(d, field, f);
    fclose(f);
    return buf;
}

void
nw__setting_format(const nw_settings *s, const nw_setting_def *d, FILE *out)
{
    format_value(d, (const char *) s + d->offset, out);
}

/* ------------------------------------------------------------------ */
/* Defaults */

/* The default as text, including those Gunicorn takes from the
   environment and the process; buf holds computed ones. */
static const char *
default_text(const nw_setting_def *d, char *buf, size_t len)
{
    const char *env;

    switch ((enum nw_setting_id) (d - nw__setting_defs)) {
    case NW_S_bind:
        if ((env = getenv("PORT")) != NULL) {
            snprintf(buf, len, "0.0.0.0:%s", env);
            return buf;
        }
        break;
    case NW_S_workers:
        if ((env = getenv("WEB_CONCURRENCY")) != NULL) {
            return env;
        }
        break;
    case NW_S_forwarded_allow_ips:
        if ((env = getenv("FORWARDED_ALLOW_IPS")) != NULL) {
            return env;
        }
        break;
    case NW_S_sendfile:
        if ((env = getenv("SENDFILE")) != NULL) {
            /* Gunicorn: y, 1, yes or true (any case) turn it on */
            return (strcasecmp(env, "y") == 0 || strcmp(env, "1") == 0
                    || strcasecmp(env, "yes") == 0
                    || strcasecmp(env, "true") == 0)
                       ? "true"
                       : "false";
        }
        break;
    case NW_S_user:
        snprintf(buf, len, "%ld", (long) geteuid());
        return buf;
    case NW_S_group:
        snprintf(buf, len, "%ld", (long) getegid());
        return buf;
    default:
        break;
    }
    return d->default_value;
}

/* The default value of d, parsed; a bad environment value falls back to
   the table's default. */
static int
parse_default(const nw_setting_def *d, nw_value *v, char *err, size_t errlen)
{
    char buf[512];
    const char *text = default_text(d, buf, sizeof(buf));
    int rc = NW_OK;

    memset(v, 0, sizeof(*v));
    if (text == NULL || d->type == NW_T_CALLABLE || d->type == NW_T_PYOBJ) {
        return NW_OK;
    }
    if (parse_value(d, text, v, err, errlen) != NW_OK) {
        rc = NW_ERROR;
        if (text == d->default_value
            || parse_value(d, d->default_value, v, err, errlen) != NW_OK) {
            /* A bad default is a bug in settings.def, caught by the unit
               tests; never user input. */
            fprintf(stderr, "narwhal: bad default for %s: %s\n", d->name,
                    err);
            abort();
        }
    }
    return rc;
}

static int
equals_default(const nw_setting_def *d, const void *field)
{
    nw_value dv;
    char err[256], *a, *b;
    int same;

    if (d->type == NW_T_CALLABLE || d->type == NW_T_PYOBJ) {
        const nw_pyref *r = field;
        return (r->spec == NULL && r->obj == NULL)
               || (d->type == NW_T_PYOBJ && r->text != NULL
                   && strcmp(r->text, d->default_value) == 0);
    }
    parse_default(d, &dv, err, sizeof(err));
    a = format_dup(d, field);
    b = format_dup(d, &dv);
    same = strcmp(a, b) == 0;
    free(a);
    free(b);
    value_free(d, &dv);
    return same;
}

int
nw__setting_is_default(const nw_settings *s, const nw_setting_def *d)
{
    size_t idx = (size_t) (d - nw__setting_defs);

    return s->source[idx] == NW_SRC_DEFAULT
           || equals_default(d, (const char *) s + d->offset);
}

/* ------------------------------------------------------------------ */
/* Setting */

static void
set_origin(nw_settings *s, size_t idx, enum nw_setting_source src,
           const char *origin)
{
    s->source[idx] = (unsigned char) src;
    free(s->origin[idx]);
    s->origin[idx] = origin ? nw__xstrdup(origin) : NULL;
}

static int
refused(const nw_setting_def *d, const char *text, const nw_value *v,
        char *err, size_t errlen)
{
    if (!(d->flags & NW_F_REFUSED) || equals_default(d, v)) {
        return 0;
    }
    snprintf(err, errlen, "'%s' is not supported: %s", text ? text : "None",
             d->note);
    return 1;
}

/* Replace the field with v (consumed) if src may. */
static void
store(nw_settings *s, const nw_setting_def *d, nw_value *v,
      enum nw_setting_source src, const char *origin)
{
    size_t idx = (size_t) (d - nw__setting_defs);
    void *field = (char *) s + d->offset;

    if (src < s->source[idx]) {
        value_free(d, v);
        return;
    }
    value_free(d, field);
    memcpy(field, v, value_size(d));
    memset(v, 0, sizeof(*v));
    set_origin(s, idx, src, origin);
}

int
nw__setting_set(nw_settings *s, const nw_setting_def *d, const char *value,
                enum nw_setting_source src, const char *origin, char *err,
                size_t errlen)
{
    size_t idx = (size_t) (d - nw__setting_defs);
    nw_value v;

    if (value == NULL) {
        switch (d->type) {
        case NW_T_STR:
        case NW_T_CHOICE:
            if (d->type == NW_T_CHOICE) {
                snprintf(err, errlen, "None is not one of the choices");
                return NW_ERROR;
            }
            memset(&v, 0, sizeof(v));
            store(s, d, &v, src, origin);
            return NW_OK;
        case NW_T_LIST:
        case NW_T_CSV:
        case NW_T_DICT:
            return nw__setting_clear(s, d, src, origin, err, errlen);
        default:
            snprintf(err, errlen, "None is not a valid value");
            return NW_ERROR;
        }
    }
    if (parse_value(d, value, &v, err, errlen) != NW_OK) {
        return NW_ERROR;
    }
    if (d->type == NW_T_CALLABLE && (d->flags & NW_F_REFUSED)) {
        snprintf(err, errlen, "'%s' is not supported: %s", value, d->note);
        value_free(d, &v);
        return NW_ERROR;
    }
    if (refused(d, value, &v, err, errlen)) {
        value_free(d, &v);
        return NW_ERROR;
    }
    if (d->type == NW_T_LIST && src == s->source[idx]
        && src != NW_SRC_DEFAULT) {
        /* the same source again: one more item */
        nw_strlist *l = NW_SETTING_PTR(s, d, nw_strlist);
        l->items = nw__xrealloc(l->items, (l->count + 1) * sizeof(char *));
        l->items[l->count++] = v.list.items[0];
        free(v.list.items);
        set_origin(s, idx, src, origin);
        return NW_OK;
    }
    store(s, d, &v, src, origin);
    return NW_OK;
}

int
nw__setting_clear(nw_settings *s, const nw_setting_def *d,
                  enum nw_setting_source src, const char *origin, char *err,
                  size_t errlen)
{
    nw_value v;

    if (d->type != NW_T_LIST && d->type != NW_T_CSV
        && d->type != NW_T_DICT) {
        snprintf(err, errlen, "an empty value is not valid here");
        return NW_ERROR;
    }
    memset(&v, 0, sizeof(v));
    if (refused(d, "[]", &v, err, errlen)) {
        return NW_ERROR;
    }
    store(s, d, &v, src, origin);
    return NW_OK;
}

int
nw__setting_set_map(nw_settings *s, const nw_setting_def *d,
                    const char *const *keys, const char *const *values,
                    size_t n, enum nw_setting_source src, const char *origin,
                    char *err, size_t errlen)
{
    nw_value v;

    if (d->type != NW_T_DICT) {
        snprintf(err, errlen, "a dict is not valid here");
        return NW_ERROR;
    }
    memset(&v, 0, sizeof(v));
    for (size_t i = 0; i < n; i++) {
        strmap_add(&v.map, keys[i], strlen(keys[i]), values[i],
                   strlen(values[i]));
    }
    store(s, d, &v, src, origin);
    return NW_OK;
}

int
nw__setting_set_pyref(nw_settings *s, const nw_setting_def *d, nw_pyref *ref,
                      enum nw_setting_source src, const char *origin,
                      char *err, size_t errlen)
{
    nw_value v;

    memset(&v, 0, sizeof(v));
    v.ref = *ref;
    memset(ref, 0, sizeof(*ref));
    if (d->type != NW_T_CALLABLE && d->type != NW_T_PYOBJ) {
        snprintf(err, errlen, "a Python object is not valid here");
        pyref_clear(&v.ref);
        return NW_ERROR;
    }
    if (d->flags & NW_F_REFUSED) {
        snprintf(err, errlen, "%s is not supported: %s",
                 v.ref.text ? v.ref.text : "the value", d->note);
        pyref_clear(&v.ref);
        return NW_ERROR;
    }
    store(s, d, &v, src, origin);
    return NW_OK;
}

void
nw__settings_init(nw_settings *s)
{
    static unsigned long serials;
    char err[256];

    memset(s, 0, sizeof(*s));
    s->serial = ++serials;
    for (size_t i = 0; i < NW_SETTING_COUNT; i++) {
        const nw_setting_def *d = &nw__setting_defs[i];
        nw_value v;
        if (parse_default(d, &v, err, sizeof(err)) != NW_OK) {
            /* e.g. WEB_CONCURRENCY=many: the first such error is kept for
               main to report */
            if (s->env_error[0] == '\0') {
                const char *var = i == NW_S_bind      ? "PORT"
                                  : i == NW_S_workers ? "WEB_CONCURRENCY"
                                                      : "FORWARDED_ALLOW_IPS";
                snprintf(s->env_error, sizeof(s->env_error),
                         "environment variable %s (the default of %s): %s",
                         var, d->name, err);
            }
        }
        memcpy((char *) s + d->offset, &v, value_size(d));
    }
}

void
nw__settings_free(nw_settings *s)
{
    for (size_t i = 0; i < NW_SETTING_COUNT; i++) {
        value_free(&nw__setting_defs[i], (void *) ((char *) s
                                                   + nw__setting_defs[i]
                                                         .offset));
        free(s->origin[i]);
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

/* ------------------------------------------------------------------ */
/* Did you mean: optimal string alignment distance, case-insensitive. */

size_t
nw__edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t *d;
    size_t r;

    if (la > 64 || lb > 64) {
        return (size_t) -1;
    }
    d = nw__xcalloc((la + 1) * (lb + 1), sizeof(size_t));
#define D(i, j) d[(i) * (lb + 1) + (j)]
    for (size_t i = 0; i <= la; i++) {
        D(i, 0) = i;
    }
    for (size_t j = 0; j <= lb; j++) {
        D(0, j) = j;
    }
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            int ca = tolower((unsigned char) a[i - 1]);
            int cb = tolower((unsigned char) b[j - 1]);
            size_t best = D(i - 1, j - 1) + (ca != cb);
            if (D(i - 1, j) + 1 < best) {
                best = D(i - 1, j) + 1;
            }
            if (D(i, j - 1) + 1 < best) {
                best = D(i, j - 1) + 1;
            }
            if (i > 1 && j > 1 && ca == tolower((unsigned char) b[j - 2])
                && tolower((unsigned char) a[i - 2]) == cb
                && D(i - 2, j - 2) + 1 < best) {
                best = D(i - 2, j - 2) + 1;
            }
            D(i, j) = best;
        }
    }
    r = D(la, lb);
#undef D
    free(d);
    return r;
}

size_t
nw__suggest_limit(const char *name)
{
    size_t n = strlen(name);
    return n <= 3 ? 0 : n <= 5 ? 1 : 2;
}

const nw_setting_def *
nw__setting_suggest(const char *name)
{
    const nw_setting_def *best = NULL;
    size_t best_d = nw__suggest_limit(name) + 1;

    for (size_t i = 0; i < NW_SETTING_COUNT; i++) {
        size_t dist = nw__edit_distance(name, nw__setting_defs[i].name);
        if (dist < best_d) {
            best_d = dist;
            best = &nw__setting_defs[i];
        }
    }
    return best;
}

/* ------------------------------------------------------------------ */

static int
by_name(const void *a, const void *b)
{
    const nw_setting_def *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

void
nw__settings_print(const nw_settings *s, FILE *out)
{
    const nw_setting_def *sorted[NW_SETTING_COUNT];
    size_t width = 0;

    for (size_t i = 0; i < NW_SETTING_COUNT; i++) {
        sorted[i] = &nw__setting_defs[i];
        if (strlen(sorted[i]->name) > width) {
            width = strlen(sorted[i]->name);
        }
    }
    qsort(sorted, NW_SETTING_COUNT, sizeof(sorted[0]), by_name);
    for (size_t i = 0; i < NW_SETTING_COUNT; i++) {
        fprintf(out, "%-*s = ", (int) width, sorted[i]->name);
        nw__setting_format(s, sorted[i], out);
        fputc('\n', out);
    }
}
