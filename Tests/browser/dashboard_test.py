"""The operator dashboard (/ui/) in a real browser: Debian's Chromium driven by Playwright (sync API).

Run by scripts/browser-test.sh against `keygate serve` with the sandbox's DPS behind the connector
`azure`, the group `fleet`, 10,000 allowlisted devices dash-0000…dash-9999, of which dash-0000…dash-0004
are enrolled. Each step asserts a real outcome (the page, the sandbox's DPS, OCSP, the audit log) and
saves a full-page screenshot of every page it visits as NN-name.png in BROWSER_ARTIFACTS.

Environment: KEYGATE_URL (https://127.0.0.1:PORT), KEYGATE_ADMIN_TOKEN, KEYGATE_BIN (the keygate
binary), KEYGATE_DATA_DIR, KEYGATE_OCSP_URL (http://127.0.0.1:PORT/pki/ocsp), KEYGATE_ISSUING_CA and
KEYGATE_ROOT_CA (PEM files), KEYGATE_RESTART (a shell command that stops the server with SIGTERM and
starts it again on the same data folder and ports), SANDBOX_DATA_DIR (for `keygate sandbox inspect`),
FLEET_STATE_DIR (keygate-agent simulate's device folders), WORK (a scratch folder), BROWSER_ARTIFACTS.

Markup defects that do not break a step (a link to "nil", an empty alert) are printed as WARN at the
end; BROWSER_STRICT=1 makes them fail the test.
"""
import json
import os
import re
import subprocess
import sys
import time
import urllib.parse

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import sync_playwright

BASE = os.environ["KEYGATE_URL"].rstrip("/")
UI = BASE + "/ui"
ADMIN_TOKEN = os.environ["KEYGATE_ADMIN_TOKEN"]
KEYGATE = os.environ["KEYGATE_BIN"]
DATA_DIR = os.environ["KEYGATE_DATA_DIR"]
SANDBOX = os.environ["SANDBOX_DATA_DIR"]
WORK = os.environ["WORK"]
FLEET = os.environ["FLEET_STATE_DIR"]
ARTIFACTS = os.environ.get("BROWSER_ARTIFACTS", ".build/browser-artifacts")
STRICT = os.environ.get("BROWSER_STRICT") == "1"
COOKIE = "keygate_session"

os.makedirs(ARTIFACTS, exist_ok=True)
shots = [0]
warnings = {}  # defect → where it was seen
dialogs = []
page_errors = []
console_errors = []


class Failed(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failed(message)


def soft(condition, defect, where=""):
    """A defect that does not stop the flow: reported at the end (fatal with BROWSER_STRICT=1)."""
    if not condition:
        seen = warnings.setdefault(defect, [])
        if where and where not in seen:
            seen.append(where)


def passed(step, message):
    print(f"ok   {step}. {message}", flush=True)


# The pages docs/dashboard.md shows: with DOCS_SCREENSHOTS=DIR their first screen is saved there too.
DOCS_SCREENSHOTS = os.environ.get("DOCS_SCREENSHOTS")
DOCS_PAGES = {"overview": "dashboard-overview", "device-quarantined": "dashboard-device",
              "import": "dashboard-import", "audit-verified": "dashboard-audit"}


def shot(page, name):
    """A full-page screenshot, numbered in the order taken; plus the markup checks every page gets."""
    shots[0] += 1
    page.screenshot(path=os.path.join(ARTIFACTS, f"{shots[0]:02d}-{name}.png"), full_page=True)
    if DOCS_SCREENSHOTS and name in DOCS_PAGES:
        page.screenshot(path=os.path.join(DOCS_SCREENSHOTS, DOCS_PAGES[name] + ".png"), full_page=False)
    markup_checks(page, name)


def markup_checks(page, name):
    where = f"{shots[0]:02d}-{name}"
    nil_links = page.locator('a[href="nil"]')
    soft(nil_links.count() == 0, "pager links to 'nil' (a missing next/first link rendered as Optional.none)",
         f"{where} ({', '.join(nil_links.all_inner_texts())})")
    soft(page.locator('main a[href=""]').count() == 0, "links with an empty href", where)
    for selector in ('[role=alert]', '.notice', '.problem'):
        for content in page.locator(selector).all_inner_texts():
            soft(content.strip() != "", f"an empty {selector} box", where)
    for message in console_errors:
        soft(False, "browser console errors or failed sub-resource loads", f"{where}: {message}")
    console_errors.clear()
    check(not dialogs, f"{where}: a dialog opened: {dialogs}")
    check(not page_errors, f"{where}: a script error: {page_errors}")
    # Every form control a person fills in has a label (or an aria-label) that names it.
    unlabeled = page.evaluate("""() => Array.from(document.querySelectorAll('input, select, textarea'))
        .filter(e => e.type !== 'hidden' && e.type !== 'submit' && !(e.labels && e.labels.length) &&
                     !e.getAttribute('aria-label'))
        .map(e => e.name || e.id || e.outerHTML.slice(0, 60))""")
    check(not unlabeled, f"{where}: form controls without a label: {unlabeled}")


def text(page, selector):
    return page.locator(selector).first.inner_text().strip()


def keygate(*args, timeout=60):
    result = subprocess.run([KEYGATE, *args], capture_output=True, text=True, timeout=timeout)
    check(result.returncode == 0, f"keygate {' '.join(args)} failed: {result.stdout}{result.stderr}")
    return result.stdout


def sandbox_state():
    return json.loads(keygate("sandbox", "inspect", "--data-dir", SANDBOX, "--json"))


def wait_for_azure(device, enrollment_status, hub_status, seconds=30):
    """Polls the sandbox until DPS's individual enrollment and the hub identity of `device` have the
    statuses given; answers the seconds it took."""
    start = time.time()
    seen = None
    while time.time() - start < seconds:
        state = sandbox_state()
        enrollment = next((e for e in state.get("enrollments", []) if e.get("id") == device), {})
        hub = next((d for d in state.get("devices", []) if d.get("deviceId") == device), {})
        seen = (enrollment.get("provisioningStatus"), hub.get("status"))
        if seen == (enrollment_status, hub_status):
            return time.time() - start
        time.sleep(0.5)
    raise Failed(f"{device} in the sandbox: (enrollment, hub) = {seen} after {seconds} s, "
                 f"expected {(enrollment_status, hub_status)}")


def session_cookie(context):
    return next((c for c in context.cookies() if c["name"] == COOKIE), None)


def new_page(context):
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    # Console errors (a CSP violation, say) and failed loads of anything but the page itself (an error page
    # is answered 4xx on purpose).
    page.on("console", lambda message: message.type == "error" and not message.text.startswith(
        "Failed to load resource") and console_errors.append(message.text))
    page.on("response", lambda response: response.status >= 400 and response.request.resource_type != "document"
            and console_errors.append(
                f"{response.status} for {urllib.parse.urlsplit(response.url).path}"))
    return page


def run(browser):
    context = browser.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 900})
    page = new_page(context)

    # a. A wrong token is refused: the sign-in page again, 401, the problem said, no cookie.
    page.goto(UI + "/")
    check(page.url == UI + "/signin", f"not signed in, /ui/ leads to the sign-in page, not {page.url}")
    shot(page, "signin")
    page.fill("#token", "kg_" + "x" * 43)
    with page.expect_response(lambda r: r.url == UI + "/signin" and r.request.method == "POST") as answer:
        page.get_by_role("button", name="Sign in").click()
    check(answer.value.status == 401, f"a wrong token is answered 401, not {answer.value.status}")
    page.wait_for_load_state()
    problem = text(page, ".problem[role=alert]")
    check("Sign-in refused" in problem and "not valid" in problem, f"the refusal is said: {problem!r}")
    check(session_cookie(context) is None, "no session cookie after a refused sign-in")
    shot(page, "signin-refused")
    passed("a", f"a wrong token is refused (401, {problem!r}), no session cookie")

    # b. The admin token signs in: the overview with the fleet's total and a tile per state.
    # By keyboard alone: the token field has the focus, Enter submits; Tab then reaches the skip link first.
    check(page.evaluate("document.activeElement.id") == "token", "the sign-in page puts the focus on the token field")
    page.keyboard.type(ADMIN_TOKEN)
    page.keyboard.press("Enter")
    page.wait_for_url(UI + "/")
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.textContent.trim()")
    check(focused == "Skip to content", f"the first Tab reaches the skip link, not {focused!r}")
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.textContent.trim()")
    check(focused == "Keygate", f"the next Tab reaches the navigation, not {focused!r}")
    heading = text(page, "#fleet")
    check(heading == "Devices: 10,000", f"the overview says {heading!r}, not 'Devices: 10,000'")
    tiles = {}
    for tile in page.locator("section[aria-labelledby=fleet] .tiles li").all():
        tiles[tile.locator(".label").inner_text().strip()] = tile.locator(".n").inner_text().strip()
    check(tiles.get("enrolled") == "5" and tiles.get("allowlisted") == "9,995" and len(tiles) == 7,
          f"a tile per device state, 5 enrolled and 9,995 allowlisted: {tiles}")
    who = text(page, ".who")
    match = re.fullmatch(r"(\S+) · admin", who)
    check(match, f"the header names the token and its role: {who!r}")
    token_name = match.group(1)
    actor = "admin:" + token_name
    cookie = session_cookie(context)
    check(cookie and cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
          and cookie["path"] == "/ui", f"the session cookie is HttpOnly, Secure, SameSite=Strict, path /ui: {cookie}")
    last_error = page.locator("section[aria-labelledby=outbox] tbody tr td").last.inner_text().strip()
    soft(last_error == "—", "overview: a connector without errors shows its last Azure error as '(—)'",
         repr(last_error))
    shot(page, "overview")
    passed("b", f"signed in by keyboard (focus, Enter, Tab to the skip link and the navigation) as {who!r}: 'Devices: 10,000', tiles {tiles}; cookie HttpOnly, Secure, SameSite=Strict")

    # The other pages: groups, a group, connectors (with a connection test), rotations.
    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Groups", exact=True).click()
    page.wait_for_url(UI + "/groups")
    row = page.locator("main tbody tr").filter(has=page.get_by_role("link", name="fleet", exact=True))
    cells = row.locator("td").all_inner_texts()
    check(cells[0] == "fleet" and cells[7] == "azure", f"the groups page lists fleet with its connector: {cells}")
    open_rows = page.locator("main tbody .flag").count()
    soft(page.locator(".warning").count() == 0 or open_rows > 0,
         "groups page: the warning about groups flagged open shows though no group is open")
    shot(page, "groups")
    page.get_by_role("link", name="fleet", exact=True).click()
    page.wait_for_url(UI + "/groups/fleet")
    check(page.locator("#connector").input_value() == "azure", "the group form has its connector selected")
    check(page.locator("input[name=method-ddk]").is_checked(), "the group form has ddk checked")
    shot(page, "group-edit")
    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Connectors", exact=True).click()
    page.wait_for_url(UI + "/connectors")
    check("healthy" in text(page, "#c-azure"), f"the connector azure is healthy: {text(page, '#c-azure')!r}")
    summary_line = page.locator("section[aria-labelledby=c-azure] p").first.inner_text()
    soft("last error" not in summary_line, "connectors page: a connector without errors shows 'last error —:'",
         repr(summary_line))
    page.get_by_role("button", name="Test the connection").click()
    page.wait_for_url(UI + "/connectors/azure/test")
    tested = text(page, "[role=status], [role=alert]")
    check(tested.startswith("azure:"), f"the connection test answers: {tested!r}")
    shot(page, "connectors")
    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Rotations", exact=True).click()
    page.wait_for_url(UI + "/rotations")
    check("no rotation" in page.locator("main tbody").inner_text(), "no rotation of fleet yet")
    shot(page, "rotations")
    passed("pages", f"groups, group fleet, connectors ({tested!r}) and rotations pages")

    # c. One device among 10,000 by ID prefix.
    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Devices", exact=True).click()
    page.wait_for_url(UI + "/devices")
    check(page.locator("main tbody tr").count() == 50, "the device list shows a page of 50")
    shot(page, "devices")
    page.fill("#q", "dash-000")
    page.get_by_role("search").get_by_role("button", name="Search").click()
    page.wait_for_url(re.compile(r"/ui/devices\?q=dash-000(&|$)"))
    ids = page.locator("main tbody tr td:first-child").all_inner_texts()
    check(ids == ["dash-%04d" % i for i in range(10)], f"q=dash-000 lists dash-0000…dash-0009: {ids}")
    shot(page, "devices-search")
    page.get_by_role("link", name="dash-0003", exact=True).click()
    page.wait_for_url(UI + "/devices/dash-0003")
    state = text(page, "#device-state")
    check(state == "enrolled", f"dash-0003 is enrolled, not {state!r}")
    state_line = page.locator("#device-state").locator("xpath=..").inner_text().strip()
    soft(state_line == "enrolled", "device page: the State line of a device without a reason ends in a dash",
         repr(state_line))
    check(page.locator("section[aria-labelledby=certs] tbody tr").count() == 1, "dash-0003 has its certificate")
    azure_line = page.locator("section[aria-labelledby=azure] p").first.inner_text().strip()
    check(azure_line.startswith("enrolled and enabled"), f"the device page shows it enrolled in Azure: {azure_line!r}")
    soft(not azure_line.endswith(":"), "device page: 'waiting to send:' with nothing waiting", repr(azure_line))
    shot(page, "device")
    passed("c", f"q=dash-000 finds 10 of 10,000; dash-0003 is {state}")

    # d. Quarantine through the confirmation step, with markup in the reason; then re-authorize.
    reason = "<script>alert(1)</script>"
    page.get_by_role("link", name="Quarantine…").click()
    page.wait_for_url(UI + "/devices/dash-0003/quarantine")
    check("dash-0003 is enrolled" in text(page, "main form p"), "the confirmation names the device and its state")
    page.fill("#reason", reason)
    shot(page, "confirm-quarantine")
    page.get_by_role("button", name="Quarantine the device").click()
    page.wait_for_url(re.compile(r"/ui/devices/dash-0003\?notice="))
    page.wait_for_load_state()
    check(text(page, "#device-state") == "quarantined", f"dash-0003 is quarantined: {text(page, '#device-state')!r}")
    check(text(page, ".notice") == "dash-0003 is now quarantined.", f"the notice: {text(page, '.notice')!r}")
    state_line = page.locator("#device-state").locator("xpath=..").inner_text()
    check(reason in state_line, f"the reason is shown as literal text: {state_line!r}")
    check(page.locator("main script").count() == 0, "no script element in the page's content")
    timeline = page.locator(".timeline").inner_text()
    check("device.quarantined by " + actor in timeline, f"the timeline shows the quarantine by {actor}")
    page.wait_for_timeout(300)
    check(not dialogs, f"no dialog opened: {dialogs}")
    shot(page, "device-quarantined")
    took = wait_for_azure("dash-0003", "disabled", "disabled")
    passed("d", f"quarantined with reason {reason!r} shown as text, no dialog; DPS enrollment and hub identity "
                f"disabled in the sandbox after {took:.1f} s")

    page.get_by_role("link", name="Re-authorize…").click()
    page.wait_for_url(UI + "/devices/dash-0003/reauthorize")
    shot(page, "confirm-reauthorize")
    page.get_by_role("button", name="Re-authorize the device").click()
    page.wait_for_url(re.compile(r"/ui/devices/dash-0003\?notice="))
    state = text(page, "#device-state")
    check(state == "registered", f"after re-authorizing, dash-0003 is registered, not {state!r}")
    shot(page, "device-reauthorized")
    took = wait_for_azure("dash-0003", "enabled", "enabled")
    passed("d", f"re-authorized: {state}; enrollment and hub identity enabled again after {took:.1f} s")

    # e. A 1,000-row CSV with two bad lines through the upload form, with its progress bar.
    lines = ["deviceId,group"] + ["csv-%04d,fleet" % i for i in range(1000)]
    lines.insert(501, "csv bad id!,fleet")          # refused when the file is read
    lines.append("csv-unknown-group,no-such-group")  # refused by the import
    bad = {lines.index("csv bad id!,fleet") + 1: "invalid device ID",
           lines.index("csv-unknown-group,no-such-group") + 1: "no-such-group"}
    csv_path = os.path.join(WORK, "upload.csv")
    with open(csv_path, "w") as f:
        f.write("\n".join(lines) + "\n")
    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Allowlist", exact=True).click()
    page.wait_for_url(UI + "/allowlist")
    shot(page, "allowlist")
    # Record what the progress bar and status line do (sessionStorage outlives the navigation).
    page.evaluate("""() => {
        const bar = document.getElementById("import-progress"), status = document.getElementById("import-status");
        const note = () => {
            if (!bar.hidden) sessionStorage.setItem("barShown", "yes");
            sessionStorage.setItem("barMax", Math.max(+(sessionStorage.getItem("barMax") || 0), bar.value));
            if (status.textContent) sessionStorage.setItem("status", status.textContent);
        };
        new MutationObserver(note).observe(bar, {attributes: true});
        new MutationObserver(note).observe(status, {childList: true, characterData: true, subtree: true});
    }""")
    # The first poll of the import's progress is held for a screenshot of the bar.
    polls = []

    def on_poll(route):
        polls.append(route.request.url)
        if len(polls) == 1:
            shot(page, "import-progress")
        route.continue_()

    page.route(re.compile(r"/ui/allowlist/import/[^/?]+\?format=json$"), on_poll)
    page.set_input_files("#file", csv_path)
    with page.expect_response(lambda r: r.url == UI + "/allowlist/import" and r.request.method == "POST") as answer:
        page.locator("#import-form").get_by_role("button", name="Upload").click()
    check(answer.value.status == 200, f"the upload is answered 200, not {answer.value.status}")
    job = answer.value.json()
    check(job.get("href", "").startswith("/ui/allowlist/import/"), f"the upload answers the job: {job}")
    page.wait_for_url(BASE + job["href"], timeout=60_000)
    page.wait_for_selector("#import-job[data-finished=true]", timeout=60_000)
    page.unroute(re.compile(r"/ui/allowlist/import/[^/?]+\?format=json$"))
    check(polls, "the page polled the import's progress")
    progress = page.evaluate("""() => [sessionStorage.getItem("barShown"), sessionStorage.getItem("barMax"),
                                       sessionStorage.getItem("status")]""")
    check(progress[0] == "yes", f"the progress bar was shown during the upload: {progress}")
    summary = text(page, ".notice")
    check(re.match(r"1,?000 added, 0 updated, 0 unchanged, 2 refused\.$", summary),
          f"the import page reports 1,000 added and 2 refused: {summary!r}")
    soft("1,000 added" in summary, "import page: counts lack the thousands separator the overview uses", repr(summary))
    refused = {}
    for row in page.locator("xpath=//h2[.='Refused lines']/following-sibling::table[1]//tbody/tr").all():
        cells = row.locator("td").all_inner_texts()
        refused[int(cells[0])] = cells[1]
    check(sorted(refused) == sorted(bad) and all(bad[n] in refused[n] for n in bad),
          f"the bad lines are listed by line number {sorted(bad)}: {refused}")
    check(page.locator("xpath=//h2[starts-with(., 'Generated enrollment tokens')]/following-sibling::table[1]//tbody/tr")
          .count() == 1000, "the 1,000 generated enrollment tokens are shown once")
    shot(page, "import")
    page.goto(UI + "/allowlist")
    page.fill("#q", "csv-")
    page.get_by_role("search").get_by_role("button", name="Search").click()
    page.wait_for_url(re.compile(r"/ui/allowlist\?q=csv-(&|$)"))
    listed = page.locator("main tbody tr td:first-child").all_inner_texts()
    check(listed == ["csv-%04d" % i for i in range(50)], f"q=csv- lists csv-0000… a page of 50: {listed[:3]}…")
    page.get_by_role("link", name="Next page").click()
    page.wait_for_url(re.compile(r"after=csv-0049"))
    listed = page.locator("main tbody tr td:first-child").all_inner_texts()
    check(listed[0] == "csv-0050" and len(listed) == 50, f"the next page starts at csv-0050: {listed[:3]}…")
    shot(page, "allowlist-search")
    page.goto(UI + "/allowlist?q=csv-099")
    listed = page.locator("main tbody tr td:first-child").all_inner_texts()
    check(listed == ["csv-%04d" % i for i in range(990, 1000)], f"q=csv-099 lists csv-0990…csv-0999: {listed}")
    next_links = page.locator("a[rel=next]")
    soft(next_links.count() == 0, "allowlist: the last page of a search has a 'Next page' link",
         "href=%r" % (next_links.first.get_attribute("href") if next_links.count() else None))
    shot(page, "allowlist-last-page")
    passed("e", f"1,000-row CSV uploaded (bar shown, up to {progress[1]} %, {progress[2]!r}); import page: "
                f"{summary!r}, refused lines {sorted(refused)}; q=csv- lists them")

    # Without JavaScript the upload is a plain form post; the import page refreshes itself until done.
    plain = browser.new_context(ignore_https_errors=True, java_script_enabled=False)
    plain_page = new_page(plain)
    plain_page.goto(UI + "/signin")
    plain_page.fill("#token", ADMIN_TOKEN)
    plain_page.get_by_role("button", name="Sign in").click()
    plain_page.wait_for_url(UI + "/")
    plain_page.goto(UI + "/allowlist")
    small_path = os.path.join(WORK, "small.csv")
    with open(small_path, "w") as f:
        f.write("deviceId,group\nnojs-0,fleet\nnojs-1,fleet\nnojs-2,fleet\n")
    plain_page.set_input_files("#file", small_path)
    plain_page.locator("#import-form").get_by_role("button", name="Upload").click()
    plain_page.wait_for_url(re.compile(r"/ui/allowlist/import/[^/?]+$"))
    plain_page.wait_for_selector("#import-job[data-finished=true]", timeout=20_000)
    plain_summary = text(plain_page, ".notice")
    check(plain_summary.startswith("3 added"), f"without JavaScript the import page reports 3 added: {plain_summary!r}")
    shot(plain_page, "import-no-js")
    plain.close()
    passed("e", f"without JavaScript: the form posts, the import page refreshes itself: {plain_summary!r}")

    # f. Revoke a certificate of dash-0001 (keyCompromise); OCSP says revoked.
    page.goto(UI + "/devices/dash-0001")
    certificate_link = page.locator("section[aria-labelledby=certs] tbody a.mono").first
    serial = certificate_link.inner_text().strip()
    certificate_link.click()
    page.wait_for_url(UI + "/certificates/" + serial)
    check(text(page, "#certificate-status") == "active", "the certificate is active before")
    status_line = page.locator("#certificate-status").locator("xpath=..").inner_text().strip()
    soft(status_line == "active", "certificate page: the Status line of an active certificate has an empty "
         "reason and date", repr(status_line))
    pem = page.locator("details pre").text_content().strip()
    check(pem.startswith("-----BEGIN CERTIFICATE-----"), "the certificate page has the PEM")
    # The certificate dash-0001 holds (keygate-agent simulate's state folder): the same one.
    held = json.load(open(os.path.join(FLEET, "dash-0001", "state.json")))
    check(held["certificateSerial"].lower() == serial.lower(), f"the page's serial is the one the device holds: {held}")
    pem_path = os.path.join(FLEET, "dash-0001", "device.crt.pem")
    device_pem = open(pem_path).read()
    check(device_pem.split("-----END CERTIFICATE-----")[0].strip() == pem.split("-----END CERTIFICATE-----")[0].strip(),
          "the page's PEM is the device's certificate")
    page.locator("details summary").click()
    shot(page, "certificate")
    page.select_option("#reason", "keyCompromise")
    page.get_by_role("button", name="Revoke this certificate").click()
    page.wait_for_url(re.compile(r"/ui/certificates/%s\?notice=" % serial))
    check(text(page, "#certificate-status") == "revoked", f"the page shows it revoked: {text(page, '#certificate-status')!r}")
    notice = text(page, ".notice")
    check("revoked" in notice and "keyCompromise" in notice, f"the notice: {notice!r}")
    check(page.get_by_role("button", name="Revoke this certificate").count() == 0, "no revoke form any more")
    shot(page, "certificate-revoked")
    ocsp = subprocess.run(
        ["openssl", "ocsp", "-issuer", os.environ["KEYGATE_ISSUING_CA"], "-cert", pem_path,
         "-url", os.environ["KEYGATE_OCSP_URL"], "-CAfile", os.environ["KEYGATE_ROOT_CA"]],
        capture_output=True, text=True, timeout=30)
    answer_text = ocsp.stdout + ocsp.stderr
    check(ocsp.returncode == 0 and "Response verify OK" in answer_text, f"OCSP answers, signed: {answer_text}")
    check(f"{pem_path}: revoked" in answer_text and re.search(r"Reason: ?keyCompromise", answer_text),
          f"OCSP says revoked, keyCompromise: {answer_text}")
    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Certificates", exact=True).click()
    page.wait_for_url(UI + "/certificates")
    # Counts by status are reused for a few seconds (DashboardHealth.countsFor): reload until they move.
    deadline = time.time() + 10
    while True:
        counts = {}
        for tile in page.locator(".tiles li").all():
            counts[tile.locator(".label").inner_text().strip()] = tile.locator(".n").inner_text().strip()
        if counts.get("revoked") == "1" or time.time() > deadline:
            break
        page.wait_for_timeout(500)
        page.reload()
    check(counts.get("revoked") == "1", f"the certificates page counts 1 revoked: {counts}")
    shot(page, "certificates")
    colons = ":".join(serial[i:i + 2] for i in range(0, len(serial), 2)).upper()
    page.fill("#serial", colons)
    page.get_by_role("search").get_by_role("button", name="Find").click()
    page.wait_for_url(re.compile(r"/ui/certificates/%s$" % serial, re.IGNORECASE))
    check(text(page, "#certificate-status") == "revoked" and "CN=dash-0001" in page.locator(".facts").inner_text(),
          f"finding {colons} opens the revoked certificate: {page.url}")
    passed("f", f"certificate {serial} of dash-0001 revoked (keyCompromise); openssl ocsp: revoked, Key Compromise; "
                f"found again by its serial with colons")

    # g. The audit log by actor: the dashboard's actions under the token's name; the chain verifies.
    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Audit", exact=True).click()
    page.wait_for_url(UI + "/audit")
    page.fill("#actor", actor)
    page.get_by_role("search").get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r"/ui/audit\?.*actor="))
    rows = [row.locator("td").all_inner_texts() for row in page.locator("main tbody tr").all()]
    check(rows and all(r[2] == actor for r in rows), f"every event listed is by {actor}")
    actions = {(r[3], r[4]) for r in rows}
    for expected in [("device.quarantined", "dash-0003"), ("device.reauthorized", "dash-0003"),
                     ("certificate.revoked", serial.upper()), ("allowlist.imported", None)]:
        check(any(a == expected[0] and (expected[1] is None or s.upper() == expected[1].upper()) for a, s in actions),
              f"the audit log shows {expected} by {actor}: {sorted(actions)}")
    quarantine_row = next(r for r in rows if r[3] == "device.quarantined")
    check(reason in quarantine_row[5], f"the quarantine's reason is in its details as text: {quarantine_row[5]!r}")
    shot(page, "audit")
    page.get_by_role("button", name="Verify the chain").click()
    page.wait_for_url(UI + "/audit/verify")
    verified = text(page, "#verify-result")
    check(verified.startswith("The audit chain holds"), f"the chain verifies: {verified!r}")
    shot(page, "audit-verified")
    passed("g", f"audit by {actor}: {len(rows)} events incl. device.quarantined, device.reauthorized, "
                f"certificate.revoked; {verified!r}")

    # On a phone: every page fits the screen's width (wide tables scroll inside their own box).
    page.set_viewport_size({"width": 390, "height": 844})
    for path, name in [("/", "phone-overview"), ("/devices?q=dash-000", "phone-devices"),
                       ("/devices/dash-0003", "phone-device"), ("/audit", "phone-audit")]:
        page.goto(UI + path)
        width = page.evaluate("document.documentElement.scrollWidth")
        check(width <= 392, f"{path} fits a 390-px-wide phone screen (the page is {width} px wide)")
        shot(page, name)
    page.set_viewport_size({"width": 1280, "height": 900})
    passed("phone", "overview, devices, a device and the audit log fit a 390-px-wide screen")

    # h. A form posted without its CSRF token (or with a wrong one) is refused; nothing changes.
    answer = context.request.post(UI + "/devices/dash-0002/quarantine", form={"reason": "x"}, max_redirects=0)
    check(answer.status == 403 and "csrfTokenInvalid" in answer.text(),
          f"a quarantine without the CSRF token is answered 403 csrfTokenInvalid, not {answer.status}")
    answer = context.request.post(UI + "/devices/dash-0002/quarantine", form={"reason": "x", "csrf": "A" * 43},
                                  max_redirects=0)
    check(answer.status == 403, f"a wrong CSRF token is answered 403, not {answer.status}")
    answer = context.request.post(UI + "/signout", form={}, max_redirects=0)
    check(answer.status == 403, f"signing out needs the CSRF token too, not {answer.status}")
    page.goto(UI + "/devices/dash-0002")
    check(text(page, "#device-state") == "enrolled", "dash-0002 is still enrolled")
    check("device.quarantined" not in page.locator(".timeline").inner_text(), "no quarantine in its timeline")
    passed("h", "POST /ui/devices/dash-0002/quarantine without (or with a wrong) CSRF token: 403, still enrolled")

    # i. Markup in a search is echoed as text.
    query = '<script>x</script>"><img src=x onerror=alert(2)>'
    response = page.goto(UI + "/devices?q=" + urllib.parse.quote(query))
    body = response.text()
    check("&lt;script&gt;x&lt;/script&gt;" in body and "<script>x</script>" not in body,
          "the query is escaped in the HTML the server sent")
    check("<img src=x" not in body and "&quot;&gt;&lt;img" in body, "the quote cannot end the attribute")
    check(page.input_value("#q") == query, "the search box shows the query as typed")
    scripts = page.evaluate("() => [...document.scripts].map(s => s.src || s.textContent)")
    check(scripts == [UI + "/static/dashboard.js"], f"the only script is dashboard.js: {scripts}")
    check(page.locator("img").count() == 0, "no img element was made")
    check(text(page, "main p") == "No device matches.", "nothing matches")
    page.wait_for_timeout(300)
    shot(page, "devices-xss-query")
    response = page.goto(UI + "/devices?state=" + urllib.parse.quote("<b>bold</b>"))
    problem = text(page, ".problem")
    check(response.status == 400 and page.locator("main b").count() == 0 and "<b>bold</b>" in problem,
          f"a bad filter is refused (400) and echoed as text in the error: {response.status} {problem!r}")
    shot(page, "devices-bad-state")
    response = page.goto(UI + "/devices/" + urllib.parse.quote("<b>bold</b>", safe=""))
    problem = text(page, ".problem")
    check(response.status == 404 and page.locator("main b").count() == 0, f"an unknown device: 404, {problem!r}")
    soft("no device <b>bold</b>" in problem, "route parameters are not percent-decoded", repr(problem))
    shot(page, "device-not-found")
    passed("i", "a <script> query and an attribute break-out are echoed as text (&lt;script&gt;), no element made")

    # j. Sessions: kept across a restart; sign-out ends the session for good; a revoked token ends its.
    restart = subprocess.run(os.environ["KEYGATE_RESTART"], shell=True, capture_output=True, text=True, timeout=90)
    check(restart.returncode == 0, f"the server restarted: {restart.stdout}{restart.stderr}")
    page.goto(UI + "/")
    check(page.url == UI + "/", f"after the restart the same browser is still signed in, not at {page.url}")
    check(text(page, ".who") == who and text(page, "#fleet") == "Devices: 11,003",
          f"after the restart: {text(page, '.who')!r}, {text(page, '#fleet')!r}")
    shot(page, "overview-after-restart")
    old = dict(session_cookie(context))
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(UI + "/signin")
    check(session_cookie(context) is None, "signing out clears the cookie")
    shot(page, "signed-out")
    page.goto(UI + "/devices")
    check(page.url == UI + "/signin", "signed out, pages lead to the sign-in page")
    replay = browser.new_context(ignore_https_errors=True)
    replay.add_cookies([{k: old[k] for k in ("name", "value", "domain", "path", "secure", "httpOnly", "sameSite")}])
    replay_page = new_page(replay)
    replay_page.goto(UI + "/")
    check(replay_page.url == UI + "/signin", f"the signed-out cookie no longer works: {replay_page.url}")
    answer = replay.request.post(UI + "/devices/dash-0002/quarantine", form={"reason": "x"}, max_redirects=0)
    check(answer.status == 401, f"nor for a POST: {answer.status}")
    replay.close()
    passed("j", "the session survived a SIGTERM restart; after signing out its cookie leads to the sign-in page")

    operator_token = keygate("token", "create", "--data-dir", DATA_DIR, "--name", "browser-operator",
                             "--role", "operator").strip()
    other = browser.new_context(ignore_https_errors=True)
    other_page = new_page(other)
    other_page.goto(UI + "/signin")
    other_page.fill("#token", operator_token)
    other_page.get_by_role("button", name="Sign in").click()
    other_page.wait_for_url(UI + "/")
    check(text(other_page, ".who") == "browser-operator · operator", f"signed in: {text(other_page, '.who')!r}")
    other_page.goto(UI + "/connectors")
    with other_page.expect_response(lambda r: r.url.endswith("/ui/connectors/azure/test")) as answer:
        other_page.get_by_role("button", name="Test the connection").click()
    check(answer.value.status == 403 and "roleForbidden" in text(other_page, ".problem"),
          f"an operator may not test a connector: {answer.value.status} {text(other_page, '.problem')!r}")
    shot(other_page, "operator-refused")
    keygate("token", "revoke", "--data-dir", DATA_DIR, "browser-operator")
    other_page.goto(UI + "/devices")
    check(other_page.url == UI + "/signin", f"the revoked token's session ends at once: {other_page.url}")
    other_page.fill("#token", operator_token)
    with other_page.expect_response(lambda r: r.url == UI + "/signin" and r.request.method == "POST") as answer:
        other_page.get_by_role("button", name="Sign in").click()
    check(answer.value.status == 401 and "revoked" in text(other_page, ".problem"),
          f"the revoked token cannot sign in again: {answer.value.status} {text(other_page, '.problem')!r}")
    shot(other_page, "signin-revoked-token")
    passed("j", "an operator token's session: refused a connector test (403 roleForbidden), ended by "
                "`keygate token revoke`, and the token cannot sign in again")

    # Last (it locks this address out of signing in): refused sign-ins from one address are held off.
    statuses = []
    for _ in range(12):
        answer = other.request.post(UI + "/signin", form={"token": "kg_" + "y" * 43}, max_redirects=0)
        statuses.append(answer.status)
        if answer.status == 429:
            check(answer.headers.get("retry-after", "").isdigit(), f"429 with a Retry-After: {answer.headers}")
            break
    check(statuses[-1] == 429, f"refused sign-ins from one address end in 429: {statuses}")
    other_page.goto(UI + "/signin")
    stale = session_cookie(other)  # the revoked operator token's cookie, still in the browser
    other_page.fill("#token", ADMIN_TOKEN)
    with other_page.expect_response(lambda r: r.url == UI + "/signin" and r.request.method == "POST") as answer:
        other_page.get_by_role("button", name="Sign in").click()
    check(answer.value.status == 429 and "Too many refused sign-ins" in text(other_page, ".problem"),
          f"then even the right token is held off: {answer.value.status} {text(other_page, '.problem')!r}")
    check(session_cookie(other) == stale, "no new session cookie while held off")
    shot(other_page, "signin-held-off")
    other.close()
    passed("j", f"after {statuses.count(401) + 2} refused sign-ins in all the address is held off: 429, Retry-After, "
                "even for the right token")
    context.close()


def main():
    started = time.time()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
        try:
            run(browser)
        except (Failed, PlaywrightError) as error:
            print(f"FAIL {type(error).__name__}: {error}", flush=True)
            pages = [page for context in browser.contexts for page in context.pages]
            for index, page in enumerate(pages):
                try:
                    page.screenshot(path=os.path.join(ARTIFACTS, f"FAIL-{index}.png"), full_page=True)
                    print(f"     at {page.url} (screenshot FAIL-{index}.png)")
                except PlaywrightError:
                    pass
            sys.exit(1)
        finally:
            browser.close()
    for defect, seen in warnings.items():
        print(f"WARN {defect}" + (f": {'; '.join(seen)}" if seen else ""))
    if warnings and STRICT:
        print(f"FAIL {len(warnings)} markup defect(s) (BROWSER_STRICT=1)")
        sys.exit(1)
    print(f"all steps passed in {time.time() - started:.1f} s; {shots[0]} screenshots in {ARTIFACTS}"
          + (f"; {len(warnings)} markup warning(s)" if warnings else ""))


if __name__ == "__main__":
    main()
