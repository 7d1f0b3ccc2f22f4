"""Uses its environ as apps may: changes it (/change), keeps it (/keep),
and reports whether each kept one still holds what it held (/kept).
Otherwise echoes the environ's str values as JSON."""
import json

KEPT = []


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/change":
        environ["wsgi.url_scheme"] = "https"
        environ["app.key"] = "set by the app"
        del environ["HTTP_X_GONE"]
    elif path == "/keep":
        KEPT.append((environ, dict(environ)))
    elif path == "/kept":
        out = json.dumps([env == snapshot for env, snapshot in KEPT]).encode()
        start_response("200 OK", [("Content-Length", str(len(out)))])
        return [out]
    seen = {k: v for k, v in environ.items() if isinstance(v, str)}
    out = json.dumps(seen, sort_keys=True).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(out)))])
    return [out]
