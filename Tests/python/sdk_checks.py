"""What the scripts that drive Microsoft's SDKs against the sandbox share: the facts they report, the
check that stops at the first failure (one JSON line, exit 1), and the sandbox's connection file."""
import json
import os
import sys

facts = {}


def check(condition, message):
    if not condition:
        print(json.dumps({"failed": message, "facts": facts}))
        sys.exit(1)


def sandbox_connection():
    """connection.json (SANDBOX_CONNECTION) and the sandbox CA's PEM."""
    conn = json.load(open(os.environ["SANDBOX_CONNECTION"]))
    return conn, open(conn["caCertificate"]).read()
