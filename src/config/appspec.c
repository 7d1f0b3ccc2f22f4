#include "config.h"

#include <stdio.h>
#include <string.h>

#include <narwhal/api.h>

#include "config/appspec.h"

/* Python identifiers: ASCII letters, digits, '_', and any non-ASCII byte
   (Python itself validates those when it imports). */
static int
ident_start(unsigned char c)
{
    return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
           || c >= 0x80;
}

static int
ident_char(unsigned char c)
{
    return ident_start(c) || (c >= '0' && c <= '9');
}

static size_t
ident_len(const char *p, size_t n)
{
    size_t i = 0;

    if (n == 0 || !ident_start((unsigned char) p[0])) {
        return 0;
    }
    while (i < n && ident_char((unsigned char) p[i])) {
        i++;
    }
    return i;
}

static void
trim(const char **p, size_t *n)
{
    while (*n > 0 && (**p == ' ' || **p == '\t')) {
        (*p)++;
        (*n)--;
    }
    while (*n > 0 && ((*p)[*n - 1] == ' ' || (*p)[*n - 1] == '\t')) {
        (*n)--;
    }
}

int
nw__appspec_parse(const char *spec, nw_appspec *out, char *err,
                  size_t errlen)
{
    const char *colon = strchr(spec, ':');
    const char *mod = spec, *expr;
    size_t mod_len = colon ? (size_t) (colon - spec) : strlen(spec);
    size_t expr_len, i, n;

    memset(out, 0, sizeof(*out));
    trim(&mod, &mod_len);
    if (mod_len == 0) {
        snprintf(err, errlen,
                 "'%s' names no module; write MODULE:VARIABLE, e.g. "
                 "myproject.wsgi:application",
                 spec);
        return NW_ERROR;
    }
    if (mod_len >= sizeof(out->module)) {
        snprintf(err, errlen, "module name in '%s' is too long", spec);
        return NW_ERROR;
    }
    /* dotted identifiers: a.b.c */
    for (i = 0; i < mod_len;) {
        n = ident_len(mod + i, mod_len - i);
        if (n == 0) {
            snprintf(err, errlen,
                     "'%.*s' is not a Python module name; write "
                     "MODULE:VARIABLE with a dotted module name, e.g. "
                     "myproject.wsgi:application",
                     (int) mod_len, mod);
            return NW_ERROR;
        }
        i += n;
        if (i < mod_len) {
            if (mod[i] != '.' || i + 1 == mod_len) {
                snprintf(err, errlen,
                         "'%.*s' is not a Python module name; write "
                         "MODULE:VARIABLE with a dotted module name, e.g. "
                         "myproject.wsgi:application",
                         (int) mod_len, mod);
                return NW_ERROR;
            }
            i++;
        }
    }
    memcpy(out->module, mod, mod_len);

    if (colon == NULL) {
        strcpy(out->name, "application");
        return NW_OK;
    }
    expr = colon + 1;
    expr_len = strlen(expr);
    trim(&expr, &expr_len);
    n = ident_len(expr, expr_len);
    if (n == 0 || n >= sizeof(out->name)) {
        snprintf(err, errlen,
                 "failed to parse '%.*s' as an attribute name or function "
                 "call; write MODULE:NAME or MODULE:FACTORY(ARGS)",
                 (int) expr_len, expr);
        return NW_ERROR;
    }
    memcpy(out->name, expr, n);
    if (n == expr_len) {
        return NW_OK;
    }
    /* NAME(ARGS): the arguments must be literals; Python's ast checks them
       when the app is loaded, here only the shape. */
    i = n;
    while (i < expr_len && (expr[i] == ' ' || expr[i] == '\t')) {
        i++;
    }
    if (i == expr_len || expr[i] != '(' || expr[expr_len - 1] != ')') {
        snprintf(err, errlen,
                 "failed to parse '%.*s' as an attribute name or function "
                 "call; write MODULE:NAME or MODULE:FACTORY(ARGS)",
                 (int) expr_len, expr);
        return NW_ERROR;
    }
    if (expr_len - i - 2 >= sizeof(out->args)) {
        snprintf(err, errlen, "factory arguments in '%s' are too long", spec);
        return NW_ERROR;
    }
    out->is_call = 1;
    memcpy(out->args, expr + i + 1, expr_len - i - 2);
    return NW_OK;
}
