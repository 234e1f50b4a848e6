"""Microsoft's Python SDKs against `keygate sandbox`, unchanged.

ProvisioningServiceClient creates an individual X.509 enrollment; ProvisioningDeviceClient
registers over MQTT; IoTHubDeviceClient connects and sends 10 messages; IoTHubRegistryManager
disables the device (its live connection is cut, a new one is refused); a disabled enrollment
cannot register; a wrong or expired SAS gets 401.

Environment: SANDBOX_CONNECTION (connection.json), DEVICE_ID, DEVICE_CERT, DEVICE_KEY,
SECOND_ID, SECOND_CERT, SECOND_KEY, REQUESTS_CA_BUNDLE (the sandbox CA). Prints one JSON line of
facts; exits non-zero on the first failed check.
"""
import base64
import hashlib
import hmac
import json
import os
import time
import urllib.parse

import requests
from azure.iot.device import IoTHubDeviceClient, Message, ProvisioningDeviceClient, X509
from azure.iot.hub import IoTHubRegistryManager
from provisioningserviceclient import ProvisioningServiceClient, ProvisioningServiceError, QuerySpecification
from provisioningserviceclient.models import AttestationMechanism, IndividualEnrollment

from sdk_checks import check, facts, sandbox_connection

conn, ca_pem = sandbox_connection()
device, cert, key = os.environ["DEVICE_ID"], os.environ["DEVICE_CERT"], os.environ["DEVICE_KEY"]
second, second_cert, second_key = os.environ["SECOND_ID"], os.environ["SECOND_CERT"], os.environ["SECOND_KEY"]
dps_cs = conn["dps"]["serviceConnectionString"]

# 1. The service SDK creates individual X.509 enrollments and reads them back.
psc = ProvisioningServiceClient.create_from_connection_string(dps_cs)
for reg_id, pem_file in [(device, cert), (second, second_cert)]:
    attestation = AttestationMechanism.create_with_x509_client_certs(open(pem_file).read())
    created = psc.create_or_update(IndividualEnrollment.create(reg_id, attestation))
    check(created.registration_id == reg_id and created.etag, "enrollment created with an etag")
fetched = psc.get_individual_enrollment(device)
info = fetched.attestation.x509.client_certificates.primary.info
check(info is not None and len(info.sha256_thumbprint) == 64, "the service filled the certificate info")
check(not fetched.attestation.x509.client_certificates.primary.certificate,
      "like DPS, a GET describes the certificate by its info and does not return it")
check(not created.attestation.x509.client_certificates.primary.certificate, "nor does the PUT's answer")
# Like DPS, a PUT whose X.509 attestation carries no usable certificate is refused (400); nothing changes.
try:
    psc.create_or_update(IndividualEnrollment.create(device, AttestationMechanism.create_with_x509_client_certs(
        "not a certificate")))
    check(False, "an enrollment without a certificate was accepted")
except Exception as error:
    check("400" in str(error) or "Bad Request" in str(error), "refused with 400: %s" % error)
check(psc.get_individual_enrollment(device).etag == fetched.etag, "the refused PUT changed nothing")
check(fetched.provisioning_status == "enabled", "enrollments are enabled by default")
facts["thumbprint"] = info.sha256_thumbprint
pages = list(psc.create_individual_enrollment_query(QuerySpecification(query="*"), page_size=1))
check(len(pages) == 2 and all(len(page) == 1 for page in pages), "query pages with continuation: %r" % pages)

# 2. The device registers over MQTT (port 8883) and is assigned a hub and a device ID.
x509 = X509(cert_file=cert, key_file=key)
pdc = ProvisioningDeviceClient.create_from_x509_certificate(
    provisioning_host=conn["dps"]["deviceEndpoint"], registration_id=device, id_scope=conn["dps"]["idScope"],
    x509=x509, server_verification_cert=ca_pem)
result = pdc.register()
check(result.status == "assigned", "registration assigned: %s" % result)
hub, device_id = result.registration_state.assigned_hub, result.registration_state.device_id
check(hub == conn["hub"]["hostName"] and device_id == device, "assigned hub and device ID")
facts["assignedHub"], facts["deviceId"] = hub, device_id

# 3. The device connects to the hub with the same certificate and sends 10 messages (QoS 1).
client = IoTHubDeviceClient.create_from_x509_certificate(
    x509=x509, hostname=hub, device_id=device_id, server_verification_cert=ca_pem)
client.connect()
for n in range(10):
    client.send_message(Message(json.dumps({"n": n})))
check(client.connected, "connected after sending")

# 4. The registry manager sees it connected, disables it: the live connection is cut.
registry = IoTHubRegistryManager.from_connection_string(conn["hub"]["registryConnectionString"])
identity = registry.get_device(device_id)
check(identity.status == "enabled" and identity.connection_state == "Connected", "hub identity enabled, connected")
check(identity.authentication.type == "selfSigned", "individual X.509 enrollment → selfSigned identity")
check(identity.authentication.x509_thumbprint.primary_thumbprint is not None, "thumbprint set by DPS")
registry.update_device_with_x509(
    device_id, identity.etag, identity.authentication.x509_thumbprint.primary_thumbprint, None, "disabled")
deadline = time.time() + 10
while client.connected and time.time() < deadline:
    time.sleep(0.1)
check(not client.connected, "the disabled device's connection was cut")
client.shutdown()
refused = IoTHubDeviceClient.create_from_x509_certificate(
    x509=x509, hostname=hub, device_id=device_id, server_verification_cert=ca_pem, connection_retry=False)
try:
    refused.connect()
    check(False, "a disabled device must not connect")
except Exception as error:  # the SDK raises CredentialError / ConnectionFailedError
    facts["disabledConnect"] = type(error).__name__
refused.shutdown()

# 5. A disabled enrollment cannot register. As with DPS, what a GET answers cannot be PUT back as it is
# (it describes the certificate by its info only): the update carries the certificate again.
echoed = psc.get_individual_enrollment(second)
echoed.provisioning_status = "disabled"
try:
    psc.create_or_update(echoed)
    check(False, "an enrollment echoed from a GET (no certificate) was accepted")
except Exception as error:
    facts["echoRefused"] = type(error).__name__
enrollment = psc.get_individual_enrollment(second)
enrollment.attestation = AttestationMechanism.create_with_x509_client_certs(open(second_cert).read())
enrollment.provisioning_status = "disabled"
psc.create_or_update(enrollment)
blocked = ProvisioningDeviceClient.create_from_x509_certificate(
    provisioning_host=conn["dps"]["deviceEndpoint"], registration_id=second, id_scope=conn["dps"]["idScope"],
    x509=X509(cert_file=second_cert, key_file=second_key), server_verification_cert=ca_pem)
try:
    outcome = blocked.register()
    check(outcome.status != "assigned", "a disabled enrollment must not be assigned")
    facts["disabledRegistration"] = outcome.status
except Exception as error:
    facts["disabledRegistration"] = type(error).__name__

# 6. A wrong SAS key and an expired SAS get 401.
parts = dict(part.split("=", 1) for part in dps_cs.split(";"))
wrong = ProvisioningServiceClient(parts["HostName"], parts["SharedAccessKeyName"],
                                  base64.b64encode(b"w" * 32).decode())
try:
    wrong.get_individual_enrollment(device)
    check(False, "a wrong key must be refused")
except ProvisioningServiceError as error:
    check("401" in str(error), "wrong key → 401: %s" % error)


def sas(host, key, name, expiry):
    sr = urllib.parse.quote(host.lower(), safe="")
    mac = hmac.new(base64.b64decode(key), ("%s\n%d" % (sr, expiry)).encode(), hashlib.sha256).digest()
    sig = urllib.parse.quote(base64.b64encode(mac).decode(), safe="")
    return "SharedAccessSignature sr=%s&sig=%s&se=%d&skn=%s" % (sr, sig, expiry, name)


url = "https://%s/enrollments/%s?api-version=2021-10-01" % (parts["HostName"], device)
expired = requests.get(url, headers={"Authorization": sas(parts["HostName"], parts["SharedAccessKey"],
                                                          parts["SharedAccessKeyName"], int(time.time()) - 60)})
check(expired.status_code == 401 and expired.json()["errorCode"] == 401002, "expired SAS → 401: %s" % expired.text)
valid = requests.get(url, headers={"Authorization": sas(parts["HostName"], parts["SharedAccessKey"],
                                                        parts["SharedAccessKeyName"], int(time.time()) + 600)})
check(valid.status_code == 200, "a hand-made valid SAS works: %s" % valid.text)
hub_parts = dict(part.split("=", 1) for part in conn["hub"]["registryConnectionString"].split(";"))
wrong_hub = IoTHubRegistryManager.from_connection_string(
    "HostName=%s;SharedAccessKeyName=iothubowner;SharedAccessKey=%s"
    % (hub_parts["HostName"], base64.b64encode(b"x" * 32).decode()))
try:
    wrong_hub.get_device(device_id)
    check(False, "a wrong hub key must be refused")
except Exception as error:
    check("401" in str(error) or "Unauthorized" in str(error), "wrong hub key → 401: %s" % error)

print(json.dumps({"ok": True, "facts": facts}))
