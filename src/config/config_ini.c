/* INI config files (inih): the settings' names in a [narwhal] or
   [gunicorn] section. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ini.h>

#include "config/config_files.h"
#include "base/memory.h"

typedef struct ini_ctx {
    nw_settings *s;
    const char *path;
    FILE *fp;
    int lineno;       /* the line inih is handling */
    int long_line;    /* a line too long for inih's buffer, or 0 */
    int max_line;     /* the longest line inih takes (its buffer - 1) */
    int in_ours;      /* seen [narwhal] or [gunicorn] */
    int failed;
    char error[1024]; /* the first error, reported alone */
    unsigned char seen[NW_SETTING_COUNT];
} ini_ctx;

/* inih's line reader, counting lines and catching the ones its fixed
   buffer would cut in two. */
static char *
read_line(char *str, int num, void *stream)
{
    ini_ctx *c = stream;
    size_t n;

    if (fgets(str, num, c->fp) == NULL) {
        return NULL;
    }
    c->lineno++;
    c->max_line = num - 1;
    n = strlen(str);
    if (n > 0 && str[n - 1] != '\n') {
        /* the buffer is full: fine if the line ends right here */
        int ch = fgetc(c->fp);
        if (ch != '\n' && ch != EOF) {
            while ((ch = fgetc(c->fp)) != EOF && ch != '\n') {
            }
            if (c->long_line == 0) {
                c->long_line = c->lineno;
            }
            str[0] = '\0';
        }
    }
    return str;
}

static int
fail(ini_ctx *c, const char *fmt, const char *a, const char *b)
{
    if (!c->failed) {
        char msg[768];
        c->failed = 1;
        snprintf(msg, sizeof(msg), fmt, a, b);
        snprintf(c->error, sizeof(c->error), "%s:%d: %s", c->path,
                 c->lineno, msg);
    }
    return 0;
}

/* A value without the quotes some people put around it. */
static char *
unquote(const char *v)
{
    size_t n = strlen(v);

    if (n >= 2 && (v[0] == '"' || v[0] == '\'') && v[n - 1] == v[0]) {
        return nw__xstrndup(v + 1, n - 2);
    }
    return nw__xstrdup(v);
}

static int
set_text(ini_ctx *c, const nw_setting_def *d, const char *value,
         const char *origin)
{
    char err[512];

    if (nw__setting_set(c->s, d, value, NW_SRC_FILE, origin, err,
                        sizeof(err))
        != NW_OK) {
        return fail(c, "%s: %s", d->name, err);
    }
    return 1;
}

/* A list: items separated by commas, or by blanks when there is no
   comma.  The first time a key appears it replaces the list; a repeated
   key (or a continuation line) adds to it. */
static int
set_list(ini_ctx *c, const nw_setting_def *d, const char *value,
         const char *origin)
{
    const char *seps = strchr(value, ',') ? "," : " \t";
    char *copy = nw__xstrdup(value), *save = NULL, *item;
    char err[512];
    int ok = 1;

    if (!c->seen[d - nw__setting_defs]
        && nw__setting_clear(c->s, d, NW_SRC_FILE, origin, err, sizeof(err))
               != NW_OK) {
        free(copy);
        return fail(c, "%s: %s", d->name, err);
    }
    for (item = strtok_r(copy, seps, &save); item && ok;
         item = strtok_r(NULL, seps, &save)) {
        char *trimmed = item, *end;
        while (isspace((unsigned char) *trimmed)) {
            trimmed++;
        }
        end = trimmed + strlen(trimmed);
        while (end > trimmed && isspace((unsigned char) end[-1])) {
            *--end = '\0';
        }
        if (*trimmed != '\0') {
            ok = set_text(c, d, trimmed, origin);
        }
    }
    free(copy);
    return ok;
}

/* A comma-separated list: blanks separate items too when there is no
   comma, and a repeated key adds to the list, as for a LIST. */
static int
set_csv(ini_ctx *c, const nw_setting_def *d, char *v, const char *origin)
{
    const nw_strlist *have = NW_SETTING_CPTR(c->s, d, nw_strlist);
    char *text;
    size_t len = strlen(v) + 1;
    int ok;

    if (strchr(v, ',') == NULL) {
        for (char *p = v; *p; p++) {
            if (*p == ' ' || *p == '\t') {
                *p = ',';
            }
        }
    }
    if (!c->seen[d - nw__setting_defs]) {
        return set_text(c, d, v, origin);
    }
    for (size_t i = 0; i < have->count; i++) {
        len += strlen(have->items[i]) + 1;
    }
    text = nw__xmalloc(len + 1);
    text[0] = '\0';
    for (size_t i = 0; i < have->count; i++) {
        strcat(text, have->items[i]);
        strcat(text, ",");
    }
    strcat(text, v);
    ok = set_text(c, d, text, origin);
    free(text);
    return ok;
}

static int
on_entry(void *user, const char *section, const char *name,
         const char *value)
{
    ini_ctx *c = user;
    char key[128], origin[1100], *v;
    const nw_setting_def *d;
    int ok;

    if (c->failed) {
        return 0;
    }
    if (c->long_line != 0) {
        char max[16];
        snprintf(max, sizeof(max), "%d", c->max_line);
        c->lineno = c->long_line;
        return fail(c, "the line is longer than %s characters%s", max,
                    " (inih's limit); split a list over repeated keys");
    }
    if (*section == '\0') {
        return fail(c, "'%s' is outside a section: put the settings under "
                       "[narwhal]%s",
                    name, "");
    }
    if (strcasecmp(section, "narwhal") != 0
        && strcasecmp(section, "gunicorn") != 0) {
        return 1; /* another program's section */
    }
    c->in_ours = 1;
    snprintf(key, sizeof(key), "%s", name);
    for (char *p = key; *p; p++) {
        *p = *p == '-' ? '_' : (char) tolower((unsigned char) *p);
    }
    d = nw__setting_find(key);
    if (d == NULL) {
        const nw_setting_def *near = nw__setting_suggest(key);
        if (near != NULL) {
            return fail(c, "unknown setting '%s' (did you mean '%s'?)", name,
                        near->name);
        }
        return fail(c, "unknown setting '%s' (see doc/settings.md)%s", name,
                    "");
    }
    if (d->type == NW_T_PYOBJ) {
        return fail(c, "%s: a dict can only be set in a Python config file%s",
                    d->name, " (use logconfig_json for a JSON file)");
    }
    snprintf(origin, sizeof(origin), "%s:%d", c->path, c->lineno);
    v = unquote(value);
    if (d->type == NW_T_LIST) {
        ok = set_list(c, d, v, origin);
    } else if (d->type == NW_T_CSV) {
        ok = set_csv(c, d, v, origin);
    } else {
        ok = set_text(c, d, v, origin);
    }
    c->seen[d - nw__setting_defs] = 1;
    free(v);
    return ok;
}

int
nw__config_ini_load(nw_settings *s, const char *path, FILE *errout)
{
    ini_ctx c;
    int rc;

    memset(&c, 0, sizeof(c));
    c.s = s;
    c.path = path;
    c.fp = fopen(path, "r");
    if (c.fp == NULL) {
        fprintf(errout, "Error: cannot read config file '%s': %s\n", path,
                strerror(errno));
        return NW_ERROR;
    }
    rc = ini_parse_stream(read_line, &c, on_entry, &c);
    fclose(c.fp);
    if (c.failed) {
        fprintf(errout, "Error: %s\n", c.error);
        return NW_ERROR;
    }
    if (c.long_line != 0) {
        fprintf(errout,
                "Error: %s:%d: the line is longer than %d characters "
                "(inih's limit); split a list over repeated keys\n",
                path, c.long_line, c.max_line);
        return NW_ERROR;
    }
    if (rc > 0) {
        fprintf(errout,
                "Error: %s:%d: syntax error: expected 'name = value', a "
                "[section] or a comment\n",
                path, rc);
        return NW_ERROR;
    }
    if (rc < 0) {
        fprintf(errout, "Error: cannot read config file '%s'\n", path);
        return NW_ERROR;
    }
    if (!c.in_ours) {
        fprintf(errout,
                "Error: %s has no [narwhal] (or [gunicorn]) section with "
                "settings\n",
                path);
        return NW_ERROR;
    }
    return NW_OK;
}
