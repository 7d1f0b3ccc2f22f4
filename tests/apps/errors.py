"""Apps that fail in the ways a server must survive."""


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/raise":
        1 / 0
    if path == "/no-start-response":
        return [b"body without a status"]
    if path == "/bad-header":
        start_response("200 OK", [("X-Evil", "a\r\nSet-Cookie: pwned=1")])
        return [b"never"]
    if path == "/raise-in-body":
        start_response("200 OK", [])

        def gen():
            yield b"first"
            raise RuntimeError("broken mid-body")
        return gen()
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]
