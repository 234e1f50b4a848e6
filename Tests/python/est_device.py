"""A device that got its certificate over EST registers with DPS and connects to IoT Hub with
Microsoft's Python device SDK (azure-iot-device), unchanged.

Environment: SANDBOX_CONNECTION (connection.json), DEVICE_ID, DEVICE_CERT (PEM: the EST-issued
certificate), DEVICE_KEY (its key, made on the device), MESSAGES. Prints one JSON line of facts;
exits non-zero on the first failed check.
"""
import json
import os

from azure.iot.device import IoTHubDeviceClient, Message, ProvisioningDeviceClient, X509

from sdk_checks import check, facts, sandbox_connection

conn, ca_pem = sandbox_connection()
device, cert, key = os.environ["DEVICE_ID"], os.environ["DEVICE_CERT"], os.environ["DEVICE_KEY"]
x509 = X509(cert_file=cert, key_file=key)
pdc = ProvisioningDeviceClient.create_from_x509_certificate(
    provisioning_host=conn["dps"]["deviceEndpoint"], registration_id=device, id_scope=conn["dps"]["idScope"],
    x509=x509, server_verification_cert=ca_pem)
result = pdc.register()
facts["status"] = result.status
check(result.status == "assigned", "DPS assigned the device")
hub, device_id = result.registration_state.assigned_hub, result.registration_state.device_id
facts["hub"], facts["deviceId"] = hub, device_id
client = IoTHubDeviceClient.create_from_x509_certificate(
    x509=x509, hostname=hub, device_id=device_id, server_verification_cert=ca_pem)
client.connect()
for i in range(int(os.environ.get("MESSAGES", "2"))):
    client.send_message(Message(json.dumps({"n": i})))
client.shutdown()
facts["ok"] = True
print(json.dumps(facts))
