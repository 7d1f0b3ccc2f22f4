"""Real apps end to end: one wrapped in wsgiref.validate.validator, a
Flask app and a Django project (Debian's python3-flask, python3-django)."""
import json
import os

import pytest

from helpers import TEST_PLUGINS, exchange, parse_responses, wait_for

KEEPALIVE = os.path.join(TEST_PLUGINS, "keepalive.so")


def request(path, method="GET", headers=(), body=b"", version="1.1"):
    lines = ["%s %s HTTP/%s" % (method, path, version), "Host: localhost"]
    lines += ["%s: %s" % h for h in headers]
    if body and not any(h[0].lower() in ("content-length",
                                         "transfer-encoding")
                        for h in headers):
        lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def chunked(body, size=7):
    out = b""
    for i in range(0, len(body), size):
        part = body[i:i + size]
        out += b"%x\r\n%s\r\n" % (len(part), part)
    return out + b"0\r\n\r\n"


def multipart(name, filename, content):
    boundary = "narwhalboundary"
    body = ("--%s\r\nContent-Disposition: form-data; name=\"%s\"; "
            "filename=\"%s\"\r\nContent-Type: application/octet-stream\r\n"
            "\r\n" % (boundary, name, filename)).encode() + content + (
                "\r\n--%s--\r\n" % boundary).encode()
    return body, ("Content-Type",
                  "multipart/form-data; boundary=%s" % boundary)


VALIDATED_RUN = [
    (request("/read", "POST", body=b"0123456789"), 200, b"0123456789"),
    (request("/read", "POST", body=b""), 200, b""),
    (request("/readlines", "POST", [("Transfer-Encoding", "chunked")],
             chunked(b"a\nbb\nccc")), 200, b"a\n|bb\n|ccc"),
    (request("/iter", "POST", body=b"x\ny\nz"), 200, b"x\ny\nz"),
    (request("/readline", "POST", body=b"first\nsecond\nthird\n"), 200,
     b"first\n/seco/nd\n"),
    (request("/write"), 200, b"written and returned"),
    (request("/gen"), 201, b"0,1,2,3,4,"),
    (request("/gen", version="1.0"), 201, b"0,1,2,3,4,"),
    (request("/errors"), 204, b""),
    (request("/file"), 200, b"wrapped file"),
    (request("/environ?a=b"), 200, None),
    (request("/missing/%7Efoo"), 404, b"not found"),
    (request("/read", "PUT", [("Content-Type", "text/plain")], b"put"),
     200, b"put"),
    (request("/read", "DELETE"), 200, b""),
    (request("/read", "PATCH", body=b"p"), 200, b"p"),
]


def class_args(klass):
    return ("-k", KEEPALIVE) if klass == "keepalive" else ("-k", klass)


@pytest.mark.parametrize("klass", ["sync", "keepalive", "ev", "gthread"])
def test_wsgiref_validator(server, klass):
    args = class_args(klass)
    s = server(*args, app="validated:application")
    for raw, status, body in VALIDATED_RUN:
        (got_status, headers, got_body), = parse_responses(exchange(s.port,
                                                                    raw))
        assert got_status == status, (raw, s.log()[-3000:])
        if body is not None:
            assert got_body == body, raw
    # HEAD, and everything on one kept connection
    raw = exchange(s.port, b"".join(r for r, _, _ in VALIDATED_RUN[:8]))
    statuses = [r[0] for r in parse_responses(raw)]
    if klass != "sync":
        assert statuses == [200, 200, 200, 200, 200, 200, 201, 201]
    else:
        assert statuses == [200]
    wait_for(lambda: "a line for wsgi.errors" in s.log(), what="wsgi.errors")
    log = s.log()
    assert "AssertionError" not in log, log
    assert "Traceback" not in log, log
    assert "WSGIWarning" not in log, log
    assert "Exception ignored" not in log, log


@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "download.bin"
    path.write_bytes(os.urandom(300 * 1024))
    return path


@pytest.mark.parametrize("klass", ["keepalive", "ev", "gthread"])
def test_flask(server, data_file, klass):
    pytest.importorskip("flask")
    s = server(*class_args(klass), app="flask_app:app",
               env={"NARWHAL_TEST_DATA_FILE": str(data_file)})
    upload_body, upload_type = multipart("file", "notes.txt", b"n" * 5000)
    raw = exchange(s.port, b"".join([
        request("/"),
        request("/user/ada", headers=[("X-Forwarded-Proto", "https")]),
        request("/form", "POST",
                [("Content-Type", "application/x-www-form-urlencoded")],
                b"a=1&b=two%20words"),
        request("/json", "POST", [("Content-Type", "application/json")],
                json.dumps({"items": [1, 2, 3]}).encode()),
        request("/upload", "POST", [upload_type,
                                    ("Transfer-Encoding", "chunked")],
                chunked(upload_body, 1000)),
        request("/file"),
        request("/go"),
        request("/nowhere"),
    ]))
    r = parse_responses(raw)
    assert [x[0] for x in r] == [200, 200, 200, 200, 200, 200, 302, 404]
    assert r[0][2] == b"hello flask"
    assert r[1][2] == b"user ada, scheme https, root ''"
    assert r[2][2] == b"1+two words"
    assert json.loads(r[3][2]) == {"received": {"items": [1, 2, 3]}, "n": 3}
    assert r[4][2] == b"notes.txt:5000"
    assert r[5][2] == data_file.read_bytes()
    assert r[5][1]["content-length"] == str(300 * 1024)
    assert r[6][1]["location"].endswith("/user/redirected")
    assert r[7][2] == b"custom 404"
    assert "Traceback" not in s.log()


@pytest.mark.parametrize("klass", ["keepalive", "ev", "gthread"])
def test_django(server, data_file, klass):
    pytest.importorskip("django")
    s = server(*class_args(klass), app="django_app:application",
               env={"NARWHAL_TEST_DATA_FILE": str(data_file),
                    "SCRIPT_NAME": "/mount"})
    upload_body, upload_type = multipart("file", "photo.jpg", b"j" * 70000)
    raw = exchange(s.port, b"".join([
        request("/mount/"),
        request("/mount/articles/2024/hello-world/"),
        request("/mount/form/", "POST",
                [("Content-Type", "application/x-www-form-urlencoded")],
                b"a=x&b=y"),
        request("/mount/api/", "PUT", [("Content-Type", "application/json")],
                b'{"k": [true, null]}'),
        request("/mount/upload/", "POST", [upload_type], upload_body),
        request("/mount/download/"),
        request("/mount/go/"),
        request("/mount/nothing-here/"),
    ]))
    r = parse_responses(raw)
    assert [x[0] for x in r] == [200, 200, 200, 200, 200, 200, 302, 404]
    assert r[0][2] == b"hello django"
    # Django builds its URLs under SCRIPT_NAME
    assert r[1][2] == b"2024/hello-world at /mount/articles/2024/hello-world/"
    assert r[2][2] == b"x+y"
    assert json.loads(r[3][2]) == {"received": {"k": [True, None]},
                                   "method": "PUT"}
    assert r[4][2] == b"photo.jpg:70000"
    assert r[5][2] == data_file.read_bytes()
    assert r[6][1]["location"] == "/mount/"
    assert "Traceback" not in s.log()
