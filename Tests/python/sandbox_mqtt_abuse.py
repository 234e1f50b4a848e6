"""Garbage, truncated, oversized and forbidden MQTT packets against the sandbox's 8883 listener.

A good device (Microsoft's SDK) stays connected and keeps sending while a second device's raw
connections are closed for each bad input. Environment as sandbox_sdk_flow.py plus BAD_ID/BAD_CERT/BAD_KEY.
Prints one JSON line; exits non-zero on the first failed check.
"""
import json
import os
import socket
import ssl
import time

from azure.iot.device import IoTHubDeviceClient, Message, ProvisioningDeviceClient, X509
from provisioningserviceclient import ProvisioningServiceClient
from provisioningserviceclient.models import AttestationMechanism, IndividualEnrollment

from sdk_checks import check, facts, sandbox_connection

conn, ca_pem = sandbox_connection()
ca_file = conn["caCertificate"]
host, scope = conn["dps"]["deviceEndpoint"], conn["dps"]["idScope"]
psc = ProvisioningServiceClient.create_from_connection_string(conn["dps"]["serviceConnectionString"])


def provision(reg_id, cert, key):
    psc.create_or_update(IndividualEnrollment.create(
        reg_id, AttestationMechanism.create_with_x509_client_certs(open(cert).read())))
    result = ProvisioningDeviceClient.create_from_x509_certificate(
        provisioning_host=host, registration_id=reg_id, id_scope=scope, x509=X509(cert_file=cert, key_file=key),
        server_verification_cert=ca_pem).register()
    check(result.status == "assigned", "%s assigned" % reg_id)
    return result.registration_state.assigned_hub


good, good_cert, good_key = os.environ["DEVICE_ID"], os.environ["DEVICE_CERT"], os.environ["DEVICE_KEY"]
bad, bad_cert, bad_key = os.environ["BAD_ID"], os.environ["BAD_CERT"], os.environ["BAD_KEY"]
hub = provision(good, good_cert, good_key)
provision(bad, bad_cert, bad_key)
client = IoTHubDeviceClient.create_from_x509_certificate(
    x509=X509(cert_file=good_cert, key_file=good_key), hostname=hub, device_id=good, server_verification_cert=ca_pem)
client.connect()
for n in range(3):
    client.send_message(Message("before %d" % n))


def string(text):
    data = text.encode()
    return len(data).to_bytes(2, "big") + data


def remaining(length):
    out = bytearray()
    while True:
        byte, length = length % 128, length // 128
        out.append(byte | (0x80 if length else 0))
        if not length:
            return bytes(out)


def packet(first, body):
    return bytes([first]) + remaining(len(body)) + body


def connect(client_id, username):
    body = string("MQTT") + bytes([4, 0x80 | 0x02]) + (60).to_bytes(2, "big") + string(client_id) + string(username)
    return packet(0x10, body)


def publish(topic, qos, payload=b"x"):
    return packet(0x30 | (qos << 1), string(topic) + ((7).to_bytes(2, "big") if qos else b"") + payload)


def closed_after(chunks, with_cert=True):
    """Sends the chunks on a fresh TLS connection; True if the server closes it within 5 s."""
    context = ssl.create_default_context(cafile=ca_file)
    if with_cert:
        context.load_cert_chain(bad_cert, bad_key)
    raw = socket.create_connection((host, 8883), timeout=5)
    sock = context.wrap_socket(raw, server_hostname=host)
    try:
        for chunk in chunks:
            sock.sendall(chunk)
        deadline = time.time() + 5
        while time.time() < deadline:
            data = sock.recv(65536)
            if not data:
                return True
        return False
    except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
        return True
    except socket.timeout:
        return False
    finally:
        sock.close()


hub_user = "%s/%s/?api-version=2019-10-01" % (hub, bad)
cases = {
    "garbage": [bytes([0x00]) + os.urandom(63)],  # packet type 0 is reserved: malformed from the first byte
    "reserved packet type": [bytes([0xF0, 0x00])],
    "bad remaining length": [bytes([0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F])],
    "truncated connect": [bytes([0x10, 0x0A]) + string("MQTT")[:4] + bytes([4, 0x02, 0, 60, 0, 200])],
    "oversized publish": [bytes([0x30]) + remaining(300 * 1024) + b"\x00" * 4096],
    "publish before connect": [publish("devices/x/messages/events/", 1)],
    "qos 2 publish": [connect(bad, hub_user), publish("devices/%s/messages/events/" % bad, 2)],
    "unknown topic": [connect(bad, hub_user), publish("somewhere/else", 1)],
    "another device's topic": [connect(bad, hub_user), publish("devices/%s/messages/events/" % good, 1)],
    "second connect": [connect(bad, hub_user), connect(bad, hub_user)],
}
for name, chunks in cases.items():
    check(closed_after(chunks), "%s: the connection must be closed" % name)
facts["closedCases"] = len(cases)

check(client.connected, "the good device is still connected")
for n in range(3):
    client.send_message(Message("after %d" % n))
client.shutdown()
print(json.dumps({"ok": True, "facts": facts}))
