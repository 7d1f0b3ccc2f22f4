"""A dotted module name: narwhal pkg.wsgi:application"""


def application(environ, start_response):
    start_response("200 OK", [("Content-Length", "6")])
    return [b"dotted"]
