"""IoT Central's REST API on the sandbox, with Microsoft's device SDK for the device side.

A device plus its X.509 attestation; its credentials give the ID scope; it provisions through DPS
and connects to the hub; `enabled: false` blocks it (connection cut, registration refused); an
enrollment group takes a CA after proof of possession and its devices provision; wrong tokens get 401.

Environment: SANDBOX_CONNECTION, DEVICE_ID/DEVICE_CERT/DEVICE_KEY, GROUP_CA_CERT/GROUP_CA_KEY,
GROUP_DEVICE_ID/GROUP_DEVICE_CERT/GROUP_DEVICE_KEY, WORK (a scratch folder), REQUESTS_CA_BUNDLE.
"""
import base64
import json
import os
import subprocess
import time

import requests
from azure.iot.device import IoTHubDeviceClient, Message, ProvisioningDeviceClient, X509

from sdk_checks import check, facts, sandbox_connection

conn, ca_pem = sandbox_connection()
app, token = conn["central"]["appURL"], conn["central"]["apiToken"]
headers = {"Authorization": token}
version = "?api-version=2022-07-31"
device, cert, key = os.environ["DEVICE_ID"], os.environ["DEVICE_CERT"], os.environ["DEVICE_KEY"]
work = os.environ["WORK"]


def der_base64(pem_file):
    der = subprocess.run(["openssl", "x509", "-in", pem_file, "-outform", "DER"], capture_output=True, check=True).stdout
    return base64.b64encode(der).decode()


# Tokens: none, wrong → 401; the API token and an AAD token for IoT Central work.
check(requests.get(app + "/api/devices/x" + version).status_code == 401, "no token → 401")
check(requests.get(app + "/api/devices/x" + version, headers={"Authorization": token[:-3] + "999"}).status_code == 401,
      "a changed token → 401")
kv = conn["keyVault"]
aad = requests.post(kv["tokenEndpoint"], data={
    "grant_type": "client_credentials", "client_id": kv["clientId"], "client_secret": kv["clientSecret"],
    "scope": "https://apps.azureiotcentral.com/.default"}).json()
check(requests.get(app + "/api/devices/x" + version,
                   headers={"Authorization": "Bearer " + aad["access_token"]}).status_code == 404, "AAD token works")

# A device and its X.509 attestation (base64 DER, as IoT Central takes it).
created = requests.put(app + "/api/devices/%s%s" % (device, version), headers=headers,
                       json={"displayName": "Boiler 7", "simulated": False, "enabled": True})
check(created.status_code == 200 and created.json()["enabled"] is True, "device created: %s" % created.text)
attested = requests.put(app + "/api/devices/%s/attestation%s" % (device, version), headers=headers, json={
    "type": "x509", "x509": {"clientCertificates": {"primary": {"certificate": der_base64(cert)}}}})
check(attested.status_code == 200, "attestation set: %s" % attested.text)
credentials = requests.get(app + "/api/devices/%s/credentials%s" % (device, version), headers=headers).json()
check(credentials["idScope"] == conn["dps"]["idScope"], "credentials give the ID scope")

# The device provisions through DPS and connects.
x509 = X509(cert_file=cert, key_file=key)


def register(reg_id, x509_credentials):
    return ProvisioningDeviceClient.create_from_x509_certificate(
        provisioning_host=conn["dps"]["deviceEndpoint"], registration_id=reg_id, id_scope=credentials["idScope"],
        x509=x509_credentials, server_verification_cert=ca_pem).register()


result = register(device, x509)
check(result.status == "assigned", "provisioned through DPS")
shown = requests.get(app + "/api/devices/%s%s" % (device, version), headers=headers).json()
check(shown["provisioned"] is True, "IoT Central shows it provisioned")
client = IoTHubDeviceClient.create_from_x509_certificate(
    x509=x509, hostname=result.registration_state.assigned_hub, device_id=device, server_verification_cert=ca_pem)
client.connect()
client.send_message(Message("hello"))

# enabled: false blocks it: the connection is cut and it can no longer register.
patched = requests.patch(app + "/api/devices/%s%s" % (device, version), headers=headers, json={"enabled": False})
check(patched.status_code == 200 and patched.json()["enabled"] is False, "device disabled")
deadline = time.time() + 10
while client.connected and time.time() < deadline:
    time.sleep(0.1)
check(not client.connected, "the disabled device's connection was cut")
client.shutdown()
try:
    blocked = register(device, x509)
    check(blocked.status != "assigned", "a disabled device must not be assigned")
    facts["blocked"] = blocked.status
except Exception as error:
    facts["blocked"] = type(error).__name__

# Enrollment group with proof of possession; a device its CA signed provisions.
group_ca_cert, group_ca_key = os.environ["GROUP_CA_CERT"], os.environ["GROUP_CA_KEY"]
check(requests.put(app + "/api/enrollmentGroups/factory%s" % version, headers=headers, json={
    "displayName": "Factory", "type": "iot", "attestation": {"type": "x509"}, "enabled": True}).status_code == 200,
      "group created")
uploaded = requests.put(app + "/api/enrollmentGroups/factory/certificates/primary%s" % version, headers=headers,
                        json={"verified": False, "certificate": der_base64(group_ca_cert)})
check(uploaded.status_code == 200 and uploaded.json()["verified"] is False, "CA uploaded unverified")
group_device = os.environ["GROUP_DEVICE_ID"]
group_x509 = X509(cert_file=os.environ["GROUP_DEVICE_CERT"], key_file=os.environ["GROUP_DEVICE_KEY"])
try:
    early = register(group_device, group_x509)
    check(early.status != "assigned", "an unverified CA must not admit devices")
except Exception:
    pass
code = requests.post(app + "/api/enrollmentGroups/factory/certificates/primary/generateVerificationCode%s" % version,
                     headers=headers).json()["verificationCode"]
proof_key, proof_csr, proof_cert = (os.path.join(work, name) for name in ("proof.key", "proof.csr", "proof.pem"))
subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", proof_key, "-out", proof_csr, "-subj", "/CN=" + code], check=True, capture_output=True)
subprocess.run(["openssl", "x509", "-req", "-in", proof_csr, "-CA", group_ca_cert, "-CAkey", group_ca_key,
                "-CAcreateserial", "-out", proof_cert, "-days", "1"], check=True, capture_output=True)
wrong = requests.post(app + "/api/enrollmentGroups/factory/certificates/primary/verify%s" % version, headers=headers,
                      json={"certificate": der_base64(os.environ["DEVICE_CERT"])})
check(wrong.status_code == 400, "a certificate without the code is refused")
verified = requests.post(app + "/api/enrollmentGroups/factory/certificates/primary/verify%s" % version,
                         headers=headers, json={"certificate": der_base64(proof_cert)})
check(verified.status_code == 204, "proof of possession accepted: %s" % verified.text)
check(register(group_device, group_x509).status == "assigned", "a group device provisions after verification")
print(json.dumps({"ok": True, "facts": facts}))
