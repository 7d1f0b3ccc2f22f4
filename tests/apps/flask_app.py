"""A Flask app served end to end (Debian's python3-flask)."""
import os

from flask import Flask, jsonify, redirect, request, send_file

app = Flask(__name__)
DATA = os.environ.get("NARWHAL_TEST_DATA_FILE", __file__)


@app.route("/")
def index():
    return "hello flask"


@app.route("/user/<name>")
def user(name):
    return "user %s, scheme %s, root %r" % (name, request.scheme,
                                             request.script_root)


@app.route("/form", methods=["POST"])
def form():
    return "%s+%s" % (request.form["a"], request.form["b"])


@app.route("/json", methods=["POST"])
def json_echo():
    data = request.get_json()
    return jsonify(received=data, n=len(data["items"]))


@app.route("/upload", methods=["POST"])
def upload():
    f = request.files["file"]
    return "%s:%d" % (f.filename, len(f.read()))


@app.route("/file")
def file():
    return send_file(DATA, mimetype="application/octet-stream")


@app.route("/go")
def go():
    return redirect("/user/redirected")


@app.errorhandler(404)
def missing(e):
    return "custom 404", 404
