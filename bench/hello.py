"""The baseline: the smallest Flask app that answers JSON, served the same way as the API."""

from flask import Flask

app = Flask(__name__)


@app.get("/")
def hello():
    return {"success": True, "message": "hello"}
