#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <narwhal/api.h>

#include "conn/conn.h"

/* Request bodies an event worker reads before calling the app stay in
   memory up to this size, then go to a file in tmp_upload_dir. */
#define SPOOL_MEMORY (1024 * 1024)

int
nw__conn_config_init(nw_conn_config *cc, const nw_settings *s, char *err,
                     size_t errlen)
{
    nw_http_limits *l = &cc->limits;
    char why[256];
    int mode;

    memset(cc, 0, sizeof(*cc));
    nw__http_limits_default(l);
    /* Gunicorn: a request line limit of 0 or more than 8190 means 8190,
       0 fields means the most (32768) */
    l->request_line = s->limit_request_line > 0
                              && s->limit_request_line < 8190
                          ? (size_t) s->limit_request_line
                          : 8190;
    l->fields = s->limit_request_fields > 0
                        && s->limit_request_fields < 32768
                    ? (unsigned) s->limit_request_fields
                    : 32768;
    /* 0: no limit per field, the head as a whole still bounded (as if
       each field had 8190 bytes) */
    l->field_size = s->limit_request_field_size > 0
                        ? (size_t) s->limit_request_field_size
                        : SIZE_MAX;
    l->body = s->limit_request_body > 0 ? (uint64_t) s->limit_request_body
                                        : 0;
    if (s->header_map == NULL || strcasecmp(s->header_map, "drop") == 0) {
        l->header_map = NW_HEADER_MAP_DROP;
    } else if (strcasecmp(s->header_map, "refuse") == 0) {
        l->header_map = NW_HEADER_MAP_REFUSE;
    } else if (strcasecmp(s->header_map, "dangerous") == 0) {
        l->header_map = NW_HEADER_MAP_DANGEROUS;
    } else {
        snprintf(err, errlen,
                 "header_map: '%s' is not one of drop, refuse, dangerous",
                 s->header_map);
        return NW_ERROR;
    }
    l->permit_obsolete_folding = s->permit_obsolete_folding != 0;
    l->strip_header_spaces = s->strip_header_spaces != 0;
    l->permit_unconventional_method =
        s->permit_unconventional_http_method != 0;
    l->permit_unconventional_version =
        s->permit_unconventional_http_version != 0;
    l->casefold_method = s->casefold_http_method != 0;
    /* the settings live as long as the process: point into them */
    l->forwarder_headers = (const char *const *) s->forwarder_headers.items;
    l->nforwarder_headers = s->forwarder_headers.count;
    l->scheme_names = (const char *const *) s->secure_scheme_headers.keys;
    l->scheme_values = (const char *const *) s->secure_scheme_headers.values;
    l->nscheme = s->secure_scheme_headers.count;

    if (nw__iplist_parse(&cc->forwarded_allow, s->forwarded_allow_ips.items,
                         s->forwarded_allow_ips.count, why, sizeof(why))
        != NW_OK) {
        snprintf(err, errlen, "forwarded_allow_ips: %s", why);
        return NW_ERROR;
    }
    if (nw__iplist_parse(&cc->proxy_allow, s->proxy_allow_ips.items,
                         s->proxy_allow_ips.count, why, sizeof(why))
        != NW_OK) {
        snprintf(err, errlen, "proxy_allow_ips: %s", why);
        nw__conn_config_free(cc);
        return NW_ERROR;
    }
    mode = nw__proxy_mode(s->proxy_protocol);
    if (mode < 0) {
        snprintf(err, errlen,
                 "proxy_protocol: '%s' is not one of off, v1, v2, auto",
                 s->proxy_protocol);
        nw__conn_config_free(cc);
        return NW_ERROR;
    }
    cc->proxy_mode = (unsigned) mode;
    cc->sendfile = s->sendfile != 0;
    cc->tmp_dir = s->tmp_upload_dir;
    cc->spool_memory = SPOOL_MEMORY;
    /* keepalive: seconds; 0 turns keep-alive off */
    cc->keepalive_ms = s->keepalive > 0 && s->keepalive < 4294967
                           ? (unsigned) s->keepalive * 1000u
                           : (s->keepalive > 0 ? 4294967000u : 0);
    cc->client_timeout_ms = s->timeout > 0 ? (unsigned) s->timeout * 1000u
                                           : 0;
    return NW_OK;
}

void
nw__conn_config_free(nw_conn_config *cc)
{
    nw__iplist_free(&cc->forwarded_allow);
    nw__iplist_free(&cc->proxy_allow);
}
