/* The header-to-environ mapping and the event-mode request cycle (body
   spooled to a file, write() queued, keep-alive, pipelining), with an
   embedded interpreter and no server around them. */
#include "config.h"

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "conn/conn.h"
#include "python/python.h"
#include "config/settings.h"
#include "wsgi/wsgi.h"

static nw_settings settings;
static nw_conn_config cfg;
static nw_listener tcp_listener, unix_listener;
static nw_worker_class ka_class = {.name = "test",
                                   .flags = NW_WORKER_KEEPALIVE};
static nw_worker worker = {.cls = &ka_class};
static PyObject *apps;

static const char app_source[] =
    "import hashlib\n"
    "def echo_len(environ, start_response):\n"
    "    body = environ['wsgi.input'].read()\n"
    "    w = start_response('200 OK', [('X-Len', str(len(body)))])\n"
    "    w(b'written:')\n"
    "    return [hashlib.md5(body).hexdigest().encode()]\n"
    "def hello(environ, start_response):\n"
    "    start_response('200 OK', [('Content-Length', '5')])\n"
    "    return [b'hello']\n";

static int
setup_python(void **state)
{
    char *argv[] = {"test_wsgi", NULL};
    char err[256];
    PyObject *code;
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    (void) state;

    nw__settings_init(&settings);
    if (nw__conn_config_init(&cfg, &settings, err, sizeof(err)) != NW_OK) {
        return -1;
    }
    if (nw__python_init(&settings, 1, argv) != NW_OK
        || nw__wsgi_init(0, 1) != NW_OK) {
        return -1;
    }
    apps = PyDict_New();
    PyDict_SetItemString(apps, "__builtins__", PyEval_GetBuiltins());
    code = PyRun_String(app_source, Py_file_input, apps, apps);
    if (code == NULL) {
        PyErr_Print();
        return -1;
    }
    Py_DECREF(code);
    /* a real TCP listener: SERVER_NAME/PORT come from its address */
    tcp_listener.fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(tcp_listener.fd, (struct sockaddr *) &sin, sizeof(sin)) != 0
        || getsockname(tcp_listener.fd, (struct sockaddr *) &sin, &len)
               != 0) {
        return -1;
    }
    tcp_listener.family = AF_INET;
    tcp_listener.url = "http://127.0.0.1:0";
    unix_listener.fd = -1;
    unix_listener.family = AF_UNIX;
    unix_listener.url = "unix:/nowhere";
    return 0;
}

/* ------------------------------------------------------------------------
 * The environ
 */

static PyObject *
environ_of(nw_conn *c, const char *req, const struct sockaddr *peer,
           socklen_t peerlen, const nw_listener *l)
{
    PyObject *env;

    nw__conn_open(c, -1, peer, peerlen, l);
    memcpy(c->http.buf, req, strlen(req));
    c->http.len = strlen(req);
    assert_int_equal(nw__conn_parse_head(c), NW_HTTP_HEAD_DONE);
    env = nw__wsgi_environ(c);
    if (env == NULL && PyErr_Occurred()) {
        PyErr_Print();
    }
    return env;
}

static void
assert_key(PyObject *env, const char *key, const char *want)
{
    PyObject *v = PyDict_GetItemString(env, key);
    if (want == NULL) {
        if (v != NULL) {
            fail_msg("%s is in the environ", key);
        }
        return;
    }
    if (v == NULL) {
        fail_msg("%s is missing", key);
    }
    if (!PyUnicode_Check(v) || strcmp(PyUnicode_AsUTF8(v), want) != 0) {
        fail_msg("%s is %s, expected %s", key,
                 PyUnicode_Check(v) ? PyUnicode_AsUTF8(v) : "(not a str)",
                 want);
    }
}

static struct sockaddr_in
v4(const char *ip, unsigned port)
{
    struct sockaddr_in s;
    memset(&s, 0, sizeof(s));
    s.sin_family = AF_INET;
    s.sin_port = htons((uint16_t) port);
    inet_pton(AF_INET, ip, &s.sin_addr);
    return s;
}

static void
test_header_mapping(void **state)
{
    nw_conn c;
    struct sockaddr_in peer = v4("127.0.0.1", 40000);
    PyObject *env;
    (void) state;

    nw__conn_init(&c, NULL, &cfg, NW_CONN_BLOCKING);
    env = environ_of(&c,
                     "POST /a%20b/c?x=%41 HTTP/1.1\r\n"
                     "Host: example.org:8080\r\n"
                     "Content-Type: text/plain\r\n"
                     "Content-Length: 0\r\n"
                     "user-agent: t/1\r\n"
                     "X-Custom-Thing: one\r\n"
                     "x-custom-thing: two\r\n"
                     "X_Under: dropped\r\n"
                     "Accept:  */*  \r\n"
                     "X-Latin: caf\xe9\r\n"
                     "\r\n",
                     (struct sockaddr *) &peer, sizeof(peer), &tcp_listener);
    assert_non_null(env);
    assert_key(env, "REQUEST_METHOD", "POST");
    assert_key(env, "PATH_INFO", "/a b/c");
    assert_key(env, "QUERY_STRING", "x=%41");
    assert_key(env, "RAW_URI", "/a%20b/c?x=%41");
    assert_key(env, "SCRIPT_NAME", "");
    assert_key(env, "SERVER_PROTOCOL", "HTTP/1.1");
    assert_key(env, "CONTENT_TYPE", "text/plain");
    assert_key(env, "CONTENT_LENGTH", "0");
    assert_key(env, "HTTP_CONTENT_TYPE", NULL);
    assert_key(env, "HTTP_CONTENT_LENGTH", NULL);
    assert_key(env, "HTTP_HOST", "example.org:8080");
    assert_key(env, "HTTP_USER_AGENT", "t/1");
    assert_key(env, "HTTP_X_CUSTOM_THING", "one,two");
    assert_key(env, "HTTP_X_UNDER", NULL);
    assert_key(env, "HTTP_ACCEPT", "*/*");
    assert_key(env, "HTTP_X_LATIN", "caf\xc3\xa9"); /* U+00E9 in UTF-8 */
    assert_key(env, "REMOTE_ADDR", "127.0.0.1");
    assert_key(env, "REMOTE_PORT", "40000");
    /* TCP: the listener's address, not Host */
    assert_key(env, "SERVER_NAME", "127.0.0.1");
    assert_key(env, "wsgi.url_scheme", "http");
    assert_key(env, "SERVER_SOFTWARE", "narwhal/" NW_VERSION);
    assert_true(PyDict_GetItemString(env, "wsgi.input") == c.input);
    assert_true(PyDict_GetItemString(env, "wsgi.multiprocess") == Py_True);
    assert_true(PyDict_GetItemString(env, "wsgi.multithread") == Py_False);
    assert_true(PyDict_GetItemString(env, "wsgi.input_terminated")
                == Py_True);
    Py_DECREF(env);
    nw__wsgi_release(&c);
    nw__conn_free(&c);
}

static void
test_ipv4_formatting(void **state)
{
    static const char *const ips[] = {"10.200.0.255", "0.0.0.0",
                                      "255.255.255.255", "1.22.103.9"};
    static const unsigned ports[] = {65535, 0, 1, 8080};
    static const char *const port_strs[] = {"65535", "0", "1", "8080"};
    nw_conn c;
    (void) state;

    nw__conn_init(&c, NULL, &cfg, NW_CONN_BLOCKING);
    for (int i = 0; i < 4; i++) {
        struct sockaddr_in peer = v4(ips[i], ports[i]);
        PyObject *env = environ_of(&c, "GET / HTTP/1.1\r\n\r\n",
                                   (struct sockaddr *) &peer, sizeof(peer),
                                   &tcp_listener);
        assert_key(env, "REMOTE_ADDR", ips[i]);
        assert_key(env, "REMOTE_PORT", port_strs[i]);
        Py_DECREF(env);
    }
    nw__wsgi_release(&c);
    nw__conn_free(&c);
}

static void
test_unix_socket_server_name(void **state)
{
    nw_conn c;
    struct sockaddr_un peer;
    PyObject *env;
    (void) state;

    memset(&peer, 0, sizeof(peer));
    peer.sun_family = AF_UNIX;
    nw__conn_init(&c, NULL, &cfg, NW_CONN_BLOCKING);
    env = environ_of(&c, "GET / HTTP/1.1\r\nHost: example.org:81\r\n\r\n",
                     (struct sockaddr *) &peer, sizeof(sa_family_t),
                     &unix_listener);
    assert_key(env, "SERVER_NAME", "example.org");
    assert_key(env, "SERVER_PORT", "81");
    assert_key(env, "REMOTE_ADDR", "");
    assert_key(env, "REMOTE_PORT", NULL);
    Py_DECREF(env);
    env = environ_of(&c, "GET / HTTP/1.1\r\nHost: example.org\r\n\r\n",
                     (struct sockaddr *) &peer, sizeof(sa_family_t),
                     &unix_listener);
    assert_key(env, "SERVER_PORT", "80");
    Py_DECREF(env);
    /* a unix-socket peer is trusted: its scheme header counts */
    env = environ_of(&c, "GET / HTTP/1.1\r\nHost: [::1]\r\n"
                         "X-Forwarded-Proto: https\r\n\r\n",
                     (struct sockaddr *) &peer, sizeof(sa_family_t),
                     &unix_listener);
    assert_key(env, "SERVER_NAME", "[::1]");
    assert_key(env, "SERVER_PORT", "443");
    assert_key(env, "wsgi.url_scheme", "https");
    Py_DECREF(env);
    env = environ_of(&c, "GET / HTTP/1.0\r\n\r\n", (struct sockaddr *) &peer,
                     sizeof(sa_family_t), &unix_listener);
    assert_key(env, "SERVER_NAME", "");
    assert_key(env, "SERVER_PORT", "");
    assert_key(env, "SERVER_PROTOCOL", "HTTP/1.0");
    Py_DECREF(env);
    nw__wsgi_release(&c);
    nw__conn_free(&c);
}

static void
test_ipv6_peer_and_untrusted(void **state)
{
    nw_conn c;
    struct sockaddr_in6 peer;
    PyObject *env;
    (void) state;

    memset(&peer, 0, sizeof(peer));
    peer.sin6_family = AF_INET6;
    peer.sin6_port = htons(5555);
    inet_pton(AF_INET6, "2001:db8::7", &peer.sin6_addr);
    nw__conn_init(&c, NULL, &cfg, NW_CONN_BLOCKING);
    env = environ_of(&c, "GET /app/x HTTP/1.1\r\nHost: h\r\n"
                         "X-Forwarded-Proto: https\r\n"
                         "SCRIPT_NAME: /app\r\n\r\n",
                     (struct sockaddr *) &peer, sizeof(peer), &tcp_listener);
    assert_key(env, "REMOTE_ADDR", "2001:db8::7");
    assert_key(env, "REMOTE_PORT", "5555");
    /* not in forwarded_allow_ips: neither header is believed */
    assert_key(env, "wsgi.url_scheme", "http");
    assert_key(env, "SCRIPT_NAME", "");
    assert_key(env, "PATH_INFO", "/app/x");
    assert_key(env, "HTTP_SCRIPT_NAME", NULL);
    assert_key(env, "HTTP_X_FORWARDED_PROTO", "https");
    Py_DECREF(env);
    nw__wsgi_release(&c);
    nw__conn_free(&c);
}

static void
test_script_name_and_proxy(void **state)
{
    nw_conn c;
    struct sockaddr_in peer = v4("127.0.0.1", 1);
    nw_conn_config pcfg = cfg;
    PyObject *env;
    (void) state;

    pcfg.proxy_mode = NW_PROXY_V1;
    nw__conn_init(&c, NULL, &pcfg, NW_CONN_BLOCKING);
    env = environ_of(&c, "PROXY TCP4 203.0.113.5 192.0.2.1 4242 80\r\n"
                         "GET /app/x%2Fy HTTP/1.1\r\nHost: h\r\n"
                         "SCRIPT_NAME: /app\r\n\r\n",
                     (struct sockaddr *) &peer, sizeof(peer), &tcp_listener);
    assert_key(env, "SCRIPT_NAME", "/app");
    assert_key(env, "PATH_INFO", "/x/y");
    assert_key(env, "REMOTE_ADDR", "203.0.113.5");
    assert_key(env, "REMOTE_PORT", "4242");
    assert_key(env, "PROXY_PROTOCOL", "TCP4");
    assert_key(env, "PROXY_ADDR", "192.0.2.1");
    assert_key(env, "PROXY_PORT", "80");
    Py_DECREF(env);
    /* the path must start with SCRIPT_NAME: a 500, not an environ */
    nw__conn_open(&c, -1, (struct sockaddr *) &peer, sizeof(peer),
                  &tcp_listener);
    strcpy(c.http.buf, "GET /other HTTP/1.1\r\nSCRIPT_NAME: /app\r\n\r\n");
    c.http.len = strlen(c.http.buf);
    assert_int_equal(nw__conn_parse_head(&c), NW_HTTP_HEAD_DONE);
    assert_null(nw__wsgi_environ(&c));
    assert_false(PyErr_Occurred());
    assert_int_equal(c.error_status, 500);
    nw__wsgi_release(&c);
    nw__conn_free(&c);
}

/* ------------------------------------------------------------------------
 * Recycling the environ: a connection's next request may get the last
 * environ back with what differs changed.  Each request of a sequence is
 * built on a connection that recycles and on a fresh one; both environs
 * must be equal (wsgi.input aside, which is each connection's own).
 */

struct step {
    const char *req;
    unsigned port;     /* the peer's port (0: a unix socket's peer); another
                          one is a new connection */
    int recycled;      /* the kept environ must be the one built */
    int app;           /* what the app does with it */
    int unkept;        /* left alone by the app, yet not kept */
};

enum { APP_NOTHING, APP_CHANGES_IT, APP_KEEPS_IT };

/* env without wsgi.input, for comparing */
static PyObject *
v_https_str(void)
{
    static PyObject *v;
    if (v == NULL) {
        v = PyUnicode_FromString("https");
    }
    return v;
}

static PyObject *
without_input(PyObject *env)
{
    PyObject *d = PyDict_Copy(env);
    assert_non_null(d);
    assert_int_equal(PyDict_DelItemString(d, "wsgi.input"), 0);
    return d;
}

/* The peer of a step: 127.0.0.1:port, or a unix socket's for port 0. */
static socklen_t
step_peer(unsigned port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (port == 0) {
        ss->ss_family = AF_UNIX;
        return sizeof(sa_family_t);
    }
    *(struct sockaddr_in *) ss = v4("127.0.0.1", port);
    return sizeof(struct sockaddr_in);
}

static PyObject *
next_environ(nw_conn *c, const char *req, unsigned port, int new_connection,
             const nw_listener *l)
{
    struct sockaddr_storage ss;
    socklen_t len = step_peer(port, &ss);
    PyObject *env;

    if (new_connection) {
        return environ_of(c, req, (const struct sockaddr *) &ss, len, l);
    }
    /* the same connection: only the request is new */
    c->http.len = c->http.pos = 0;
    nw__http_reset(&c->http);
    c->head_done = 0;
    memcpy(c->http.buf, req, strlen(req));
    c->http.len = strlen(req);
    assert_int_equal(nw__conn_parse_head(c), NW_HTTP_HEAD_DONE);
    env = nw__wsgi_environ(c);
    assert_non_null(env);
    return env;
}

static void
run_steps(const struct step *steps, size_t n, const nw_listener *l)
{
    nw_conn c, fresh;
    PyObject *kept = NULL, *held = NULL, *held_copy = NULL;
    unsigned port = 1;

    nw__conn_init(&c, NULL, &cfg, NW_CONN_BLOCKING);
    for (size_t i = 0; i < n; i++) {
        struct sockaddr_storage peer;
        socklen_t peerlen = step_peer(steps[i].port, &peer);
        PyObject *env, *want, *a, *b;

        env = next_environ(&c, steps[i].req, steps[i].port,
                           i == 0 || steps[i].port != port, l);
        port = steps[i].port;
        if (steps[i].recycled) {
            assert_ptr_equal(env, kept);
        }
        if (kept != NULL) {
            Py_DECREF(kept);
            kept = NULL;
        }
        nw__conn_init(&fresh, NULL, &cfg, NW_CONN_BLOCKING);
        want = environ_of(&fresh, steps[i].req, (struct sockaddr *) &peer,
                          peerlen, l);
        assert_non_null(want);
        a = without_input(env);
        b = without_input(want);
        if (PyObject_RichCompareBool(a, b, Py_EQ) != 1) {
            PyObject_Print(a, stderr, 0);
            fputs("\n  !=\n", stderr);
            PyObject_Print(b, stderr, 0);
            fail_msg("step %zu: the recycled environ differs", i);
        }
        assert_ptr_equal(PyDict_GetItemString(env, "wsgi.input"), c.input);
        Py_DECREF(a);
        Py_DECREF(b);
        Py_DECREF(want);
        nw__wsgi_release(&fresh);
        nw__conn_free(&fresh);

        /* the app returns: finish as the server does */
        if (steps[i].app == APP_CHANGES_IT) {
            PyDict_SetItemString(env, "wsgi.url_scheme", v_https_str());
        } else if (steps[i].app == APP_KEEPS_IT) {
            Py_XDECREF(held);
            Py_XDECREF(held_copy);
            held = Py_NewRef(env);
            held_copy = PyDict_Copy(env);
        }
        c.environ = env;
        nw__wsgi_environ_done(&c);
        assert_null(c.environ);
        if (steps[i].app == APP_NOTHING && !steps[i].unkept) {
            kept = c.env_memo.env;
            assert_non_null(kept);
            Py_INCREF(kept); /* to compare pointers, dropped right after */
        } else {
            assert_null(c.env_memo.env);
        }
        if (held != NULL) {
            /* what the app kept is never changed by a later request */
            assert_int_equal(PyObject_RichCompareBool(held, held_copy, Py_EQ),
                             1);
        }
    }
    Py_XDECREF(kept);
    Py_XDECREF(held);
    Py_XDECREF(held_copy);
    nw__wsgi_release(&c);
    nw__conn_free(&c);
}

static void
test_environ_recycling(void **state)
{
    static const struct step steps[] = {
        {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 1000, 0, APP_NOTHING, 0},
        {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 1000, 1, APP_NOTHING, 0},
        /* other header names: a new environ */
        {"POST /x%20y?q=1 HTTP/1.0\r\nHost: b\r\nContent-Type: t/a\r\n"
         "Content-Length: 0\r\n\r\n",
         1000, 0, APP_NOTHING, 0},
        /* the same names: the method, path, query, protocol and values
           change in place */
        {"PUT /z?q=2 HTTP/1.1\r\nHost: c\r\nContent-Type: t/b\r\n"
         "Content-Length: 0\r\n\r\n",
         1000, 1, APP_NOTHING, 0},
        {"GET / HTTP/1.1\r\nHost: c\r\nContent-Type: t/b\r\n"
         "Content-Length: 0\r\n\r\n",
         1000, 1, APP_NOTHING, 0},
        /* names the parser does not know, a method it does not know */
        {"BREW /pot HTTP/1.1\r\nHost: c\r\nX-One: 1\r\nx-two-b: 2\r\n\r\n",
         1000, 0, APP_NOTHING, 0},
        {"BREW /pot?x HTTP/1.1\r\nHost: c\r\nx-one: 3\r\nX-Two-B: 2\r\n\r\n",
         1000, 1, APP_NOTHING, 0},
        {"GET /pot HTTP/1.1\r\nHost: c\r\nX-One: 3\r\nX-Two-C: 2\r\n\r\n",
         1000, 0, APP_NOTHING, 0},
        /* a repeated header is joined: that environ is not kept */
        {"GET / HTTP/1.1\r\nHost: c\r\nX-A: 1\r\nX-A: 2\r\n\r\n", 1000, 0,
         APP_NOTHING, 1},
        {"GET / HTTP/1.1\r\nHost: c\r\nX-A: 1\r\nX-A: 2\r\n\r\n", 1000, 0,
         APP_NOTHING, 1},
        /* a dropped header (header_map): not a key */
        {"GET / HTTP/1.1\r\nHost: c\r\nX_Under: 1\r\nX-A: 1\r\n\r\n", 1000,
         0, APP_NOTHING, 0},
        {"GET / HTTP/1.1\r\nHost: c\r\nX-A: 2\r\n\r\n", 1000, 1,
         APP_NOTHING, 0},
        /* a trusted front-end's scheme and SCRIPT_NAME come and go */
        {"GET /app/x HTTP/1.1\r\nHost: c\r\nX-Forwarded-Proto: https\r\n"
         "SCRIPT_NAME: /app\r\n\r\n",
         1000, 0, APP_NOTHING, 0},
        {"GET /bpp/y HTTP/1.1\r\nHost: c\r\nX-Forwarded-Proto: http\r\n"
         "SCRIPT_NAME: /bpp\r\n\r\n",
         1000, 1, APP_NOTHING, 0},
        /* the app changes its environ: not kept, and the next one has
           none of the change */
        {"GET /bpp/y HTTP/1.1\r\nHost: c\r\nX-Forwarded-Proto: http\r\n"
         "SCRIPT_NAME: /bpp\r\n\r\n",
         1000, 1, APP_CHANGES_IT, 0},
        {"GET /bpp/y HTTP/1.1\r\nHost: c\r\nX-Forwarded-Proto: http\r\n"
         "SCRIPT_NAME: /bpp\r\n\r\n",
         1000, 0, APP_NOTHING, 0},
        /* the app keeps a reference: not kept, never changed after */
        {"GET /k HTTP/1.1\r\nHost: d\r\n\r\n", 1000, 0, APP_KEEPS_IT, 0},
        {"GET /l HTTP/1.1\r\nHost: e\r\n\r\n", 1000, 0, APP_NOTHING, 0},
        {"GET /m HTTP/1.1\r\nHost: f\r\n\r\n", 1000, 1, APP_NOTHING, 0},
        /* a new connection in the slot: its peer's address */
        {"GET /m HTTP/1.1\r\nHost: f\r\n\r\n", 2000, 1, APP_NOTHING, 0},
        {"GET /m HTTP/1.1\r\n\r\n", 2000, 0, APP_NOTHING, 0},
        /* a unix socket's peer has no REMOTE_PORT: not that environ */
        {"GET /m HTTP/1.1\r\n\r\n", 0, 0, APP_NOTHING, 0},
        {"GET /m HTTP/1.1\r\n\r\n", 3000, 0, APP_NOTHING, 0},
    };
    (void) state;
    run_steps(steps, sizeof(steps) / sizeof(steps[0]), &tcp_listener);
}

static void
test_environ_recycling_unix_listener(void **state)
{
    /* SERVER_NAME and SERVER_PORT come from Host, request by request */
    static const struct step steps[] = {
        {"GET / HTTP/1.1\r\nHost: a:81\r\n\r\n", 1000, 0, APP_NOTHING, 0},
        {"GET / HTTP/1.1\r\nHost: b\r\n\r\n", 1000, 1, APP_NOTHING, 0},
        {"GET / HTTP/1.1\r\nHost: b:82\r\n\r\n", 1000, 1, APP_NOTHING, 0},
    };
    (void) state;
    run_steps(steps, sizeof(steps) / sizeof(steps[0]), &unix_listener);
}

/* ------------------------------------------------------------------------
 * The event-mode cycle over a socket pair
 */

struct client {
    int fd;
    const char *out;
    size_t outlen;
    size_t sent;
    char *in;
    size_t inlen;
    size_t incap;
};

static void
client_pump(struct client *cl)
{
    ssize_t n;

    if (cl->sent < cl->outlen) {
        n = send(cl->fd, cl->out + cl->sent, cl->outlen - cl->sent,
                 MSG_DONTWAIT);
        if (n > 0) {
            cl->sent += (size_t) n;
        }
    }
    for (;;) {
        if (cl->incap - cl->inlen < 65536) {
            cl->incap = cl->incap * 2 + 65536;
            cl->in = realloc(cl->in, cl->incap);
        }
        n = recv(cl->fd, cl->in + cl->inlen, cl->incap - cl->inlen,
                 MSG_DONTWAIT);
        if (n <= 0) {
            break;
        }
        cl->inlen += (size_t) n;
    }
}

/* read what the client sent so far into the parser's buffer */
static void
server_read(nw_conn *c, struct client *cl)
{
    client_pump(cl);
    for (;;) {
        size_t room = nw__http_room(&c->http);
        ssize_t n;
        if (room == 0) {
            return;
        }
        n = recv(c->fd, c->http.buf + c->http.len, room, MSG_DONTWAIT);
        if (n <= 0) {
            return;
        }
        c->http.len += (size_t) n;
    }
}

static void
server_write(nw_conn *c, struct client *cl, const void *p, size_t n)
{
    const char *b = p;
    while (n > 0) {
        ssize_t w = send(c->fd, b, n, MSG_DONTWAIT);
        if (w < 0) {
            assert_true(errno == EAGAIN);
            client_pump(cl);
            continue;
        }
        b += w;
        n -= (size_t) w;
    }
}

/* One request, event style: 1 when it was served and the connection may go
   on, 0 when it closes. */
static int
serve_one(nw_conn *c, struct client *cl, PyObject *app, int *spilled)
{
    enum nw_http_result r;
    int rc;

    for (;;) {
        r = nw__conn_parse_head(c);
        if (r != NW_HTTP_NEED_MORE) {
            break;
        }
        server_read(c, cl);
    }
    if (r == NW_HTTP_FAILED) {
        char buf[1024];
        size_t n = nw__conn_refusal(c, buf, sizeof(buf));
        server_write(c, cl, buf, n);
        return 0;
    }
    if (nw__conn_need_continue(c)) {
        server_write(c, cl, NW_CONTINUE_LINE, sizeof(NW_CONTINUE_LINE) - 1);
    }
    while ((rc = nw__conn_spool_body(c)) == NW_AGAIN) {
        server_read(c, cl);
    }
    if (rc == NW_ERROR) {
        char buf[1024];
        size_t n = nw__conn_refusal(c, buf, sizeof(buf));
        server_write(c, cl, buf, n);
        return 0;
    }
    if (spilled != NULL) {
        *spilled = nw__spool_on_disk(&c->spool);
    }
    nw__wsgi_call(c, app);
    for (;;) {
        nw_out out;
        int last;
        nw__wsgi_pull(c, &out);
        for (int i = 0; i < out.niov; i++) {
            server_write(c, cl, out.iov[i].iov_base, out.iov[i].iov_len);
        }
        last = out.last;
        nw__out_release(&out);
        if (last) {
            break;
        }
    }
    nw__wsgi_finish(c);
    if (!nw__conn_keepalive(c)) {
        return 0;
    }
    nw__conn_next(c);
    return 1;
}

static char *
make_requests(size_t body_len, size_t *len)
{
    size_t cap = body_len + body_len / 1000 * 8 + 1024, n = 0;
    char *buf = malloc(cap);
    size_t done = 0;

    n += (size_t) sprintf(buf, "POST /up HTTP/1.1\r\nHost: x\r\n"
                               "Expect: 100-continue\r\n"
                               "Transfer-Encoding: chunked\r\n\r\n");
    while (done < body_len) {
        size_t part = body_len - done < 1000 ? body_len - done : 1000;
        n += (size_t) sprintf(buf + n, "%zx\r\n", part);
        for (size_t i = 0; i < part; i++) {
            buf[n + i] = (char) ('a' + (done + i) % 26);
        }
        n += part;
        memcpy(buf + n, "\r\n", 2);
        n += 2;
        done += part;
    }
    n += (size_t) sprintf(buf + n, "0\r\n\r\nGET /hello HTTP/1.1\r\n"
                                   "Host: x\r\n\r\n"
                                   "POST /bad HTTP/1.1\r\nHost: x\r\n"
                                   "Transfer-Encoding: chunked\r\n\r\n"
                                   "zz\r\n");
    *len = n;
    return buf;
}

static void
test_event_cycle(void **state)
{
    char dir[] = "/tmp/nw-event-XXXXXX";
    nw_conn_config ecfg = cfg;
    nw_conn c;
    struct client cl;
    int sv[2], spilled = 0;
    size_t body_len = 3 * 1024 * 1024, n;
    char *req = make_requests(body_len, &n);
    PyObject *echo = PyDict_GetItemString(apps, "echo_len");
    PyObject *hello = PyDict_GetItemString(apps, "hello");
    char *p;
    (void) state;

    assert_non_null(mkdtemp(dir));
    ecfg.tmp_dir = dir;
    ecfg.spool_memory = 64 * 1024;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    memset(&cl, 0, sizeof(cl));
    cl.fd = sv[1];
    cl.out = req;
    cl.outlen = n;
    worker.core = NULL;
    nw__conn_init(&c, &worker, &ecfg, NW_CONN_EVENT);
    nw__conn_open(&c, sv[0], NULL, 0, &unix_listener);

    assert_int_equal(serve_one(&c, &cl, echo, &spilled), 1);
    assert_true(spilled); /* 3 MiB went to a file in tmp_upload_dir */
    assert_int_equal(serve_one(&c, &cl, hello, NULL), 1);
    assert_int_equal(serve_one(&c, &cl, hello, NULL), 0);
    client_pump(&cl);
    cl.in[cl.inlen] = '\0';

    p = cl.in;
    assert_true(strncmp(p, "HTTP/1.1 100 Continue\r\n\r\n", 25) == 0);
    p += 25;
    assert_true(strncmp(p, "HTTP/1.1 200 OK\r\n", 17) == 0);
    assert_non_null(strstr(p, "Connection: keep-alive\r\n"));
    assert_non_null(strstr(p, "Transfer-Encoding: chunked\r\n"));
    assert_non_null(strstr(p, "X-Len: 3145728\r\n"));
    /* write() first, then the iterable, in chunks */
    p = strstr(p, "\r\n\r\n") + 4;
    assert_true(strncmp(p, "8\r\nwritten:\r\n20\r\n", 17) == 0);
    p = strstr(p, "0\r\n\r\n") + 5;
    assert_true(strncmp(p, "HTTP/1.1 200 OK\r\n", 17) == 0);
    p = strstr(p, "\r\n\r\nhello") + 9;
    assert_true(strncmp(p, "HTTP/1.1 400 Bad Request\r\n"
                           "Connection: close\r\n", 45) == 0);
    nw__wsgi_release(&c);
    nw__conn_free(&c);
    close(sv[0]);
    close(sv[1]);
    free(cl.in);
    free(req);
    rmdir(dir); /* empty: the spool file was never linked */
    assert_int_equal(access(dir, F_OK), -1);
}

static void
test_event_body_limit(void **state)
{
    nw_conn_config ecfg = cfg;
    nw_conn c;
    struct client cl;
    int sv[2];
    static const char req[] = "POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\n";
    (void) state;

    ecfg.limits.body = 10;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    memset(&cl, 0, sizeof(cl));
    cl.fd = sv[1];
    cl.out = req;
    cl.outlen = sizeof(req) - 1;
    nw__conn_init(&c, &worker, &ecfg, NW_CONN_EVENT);
    nw__conn_open(&c, sv[0], NULL, 0, &unix_listener);
    assert_int_equal(serve_one(&c, &cl, PyDict_GetItemString(apps, "hello"),
                               NULL),
                     0);
    client_pump(&cl);
    assert_true(cl.inlen > 40);
    assert_memory_equal(cl.in, "HTTP/1.1 413 ", 13);
    nw__wsgi_release(&c);
    nw__conn_free(&c);
    close(sv[0]);
    close(sv[1]);
    free(cl.in);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_mapping),
        cmocka_unit_test(test_ipv4_formatting),
        cmocka_unit_test(test_unix_socket_server_name),
        cmocka_unit_test(test_ipv6_peer_and_untrusted),
        cmocka_unit_test(test_script_name_and_proxy),
        cmocka_unit_test(test_environ_recycling),
        cmocka_unit_test(test_environ_recycling_unix_listener),
        cmocka_unit_test(test_event_cycle),
        cmocka_unit_test(test_event_body_limit),
    };
    return cmocka_run_group_tests(tests, setup_python, NULL);
}
