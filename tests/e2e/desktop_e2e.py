#!/usr/bin/env python3
"""End-to-end test of the desktop app: the real binary under Xvfb, driven through WebDriver
(tauri-driver + WebKitWebDriver), with real IPFS nodes and a real headless second peer.

Run by tests/e2e/run.sh, which provides the display, the session bus, tauri-driver and these
environment variables: APP (desktop binary), BIN (folder of the other binaries), WORK (scratch
folder), SHOTS (where screenshots go), IPFS_API and REST_API (host:port the app's peer uses),
WEBDRIVER (tauri-driver URL). Every wait is a condition with a deadline.
"""
import base64
import json
import os
import socket
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.select import Select
from selenium.webdriver.common.options import ArgOptions

APP, BIN, WORK, SHOTS = (os.environ[k] for k in ("APP", "BIN", "WORK", "SHOTS"))
IPFS_API, REST_API = os.environ["IPFS_API"], os.environ["REST_API"]
DEADLINE = 90
procs = []
passed = 0
driver = None


def wait(what, check, deadline=DEADLINE):
    end = time.time() + deadline
    last = None
    while time.time() < end:
        try:
            v = check()
            if v:
                return v
        except Exception as e:  # the page may be mid-render
            last = e
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what} (last error: {last})")


def ok(name):
    global passed
    passed += 1
    print(f"ok - {name}", flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http(method, url, data=None, headers=None):
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status, r.read()


def rest_auth():
    """The app's peer's own REST credential (restapi.credential in its folder) as a header."""
    path = os.path.join(os.environ["IPFS_CLUSTER_PATH"], "restapi.credential")
    with open(path) as f:
        token = base64.b64encode(f.read().strip().encode()).decode()
    return {"Authorization": f"Basic {token}"}


def ipfs_add(api, content):
    boundary = "e2eboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
    _, out = http("POST", f"http://{api}/api/v0/add?pin=false", body,
                  {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    return json.loads(out.splitlines()[-1])["Hash"]


def spawn(args, log, env=None):
    p = subprocess.Popen(args, stdout=open(log, "ab"), stderr=subprocess.STDOUT, env=env)
    procs.append(p)
    return p


def shot(driver, name):
    driver.save_screenshot(os.path.join(SHOTS, f"{name}.png"))
    axe(driver, name)


AXE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "ui", "node_modules",
                   "axe-core", "axe.min.js")
checked = []


def axe(driver, name):
    """axe-core's WCAG 2.1 A and AA rules on the page as it is: no violation allowed."""
    if not driver.execute_script("return !!window.axe"):
        driver.execute_script(open(AXE).read() + "; window.axe = axe;")
        # The checker itself works here: an image without a text alternative is caught.
        caught = driver.execute_async_script("""
            const done = arguments[arguments.length - 1];
            const img = document.createElement('img');
            img.id = 'axe-self-check';
            document.body.appendChild(img);
            axe.run('#axe-self-check', {runOnly: ['image-alt']})
              .then(r => { img.remove(); done(r.violations.map(v => v.id)); })
              .catch(e => { img.remove(); done(['error: ' + e]); });
        """)
        assert caught == ["image-alt"], caught
    res = driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})
          .then(r => done(JSON.stringify(r.violations.map(v => ({
              id: v.id, impact: v.impact, help: v.help,
              nodes: v.nodes.slice(0, 5).map(n => n.target.join(' ') + ': ' + n.failureSummary)})))))
          .catch(e => done(JSON.stringify([{id: 'axe-error', help: String(e)}])));
    """)
    violations = json.loads(res)
    assert not violations, f"axe found violations on {name}: {json.dumps(violations, indent=1)}"
    checked.append(name)


def text_of(driver, css):
    # textContent through JS: WebKitWebDriver's element text is unreliable for nested nodes.
    return driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.textContent.trim() : ''", css)


def click(driver, css):
    driver.find_element(By.CSS_SELECTOR, css).click()


def keys(*k):
    ActionChains(driver).send_keys(*k).perform()


def focused():
    return driver.execute_script(
        "const e = document.activeElement; return [e.id, e.getAttribute('aria-label') || '', e.textContent.trim()]")


def tab_to(what, check, limit=60):
    for _ in range(limit):
        if check(focused()):
            return
        keys(Keys.TAB)
    raise AssertionError(f"Tab never reached {what} (last: {focused()})")


def headless_peer(name, secret=None, bootstrap=None, consensus=None, edit=None):
    """A headless peer (ipfs-cluster-service) with its own IPFS node, on loopback: a new
    cluster's first peer, or one joining `bootstrap` with `secret`; `consensus` as `init
    --consensus` takes it, `edit(cfg, peer_id, address)` on its service.json. Returns its
    process, id and swarm address."""
    folder = os.path.join(WORK, name)
    ipfs_port = free_port()
    spawn([os.path.join(BIN, "ipfs-local-node"), "--loopback-only", "--repo", os.path.join(folder, "ipfs"),
           "--api", f"/ip4/127.0.0.1/tcp/{ipfs_port}"], os.path.join(WORK, f"{name}-ipfs.log"))
    init = [os.path.join(BIN, "ipfs-cluster-service"), "--config", folder, "init"]
    if consensus:
        init += ["--consensus", consensus]
    subprocess.run(init, check=True, stdout=subprocess.DEVNULL)
    cfg_path = os.path.join(folder, "service.json")
    cfg = json.load(open(cfg_path))
    if secret:
        cfg["cluster"]["secret"] = secret
    swarm = f"/ip4/127.0.0.1/tcp/{free_port()}"
    cfg["cluster"]["peername"] = name
    cfg["cluster"]["listen_multiaddress"] = swarm
    cfg["api"]["restapi"]["http_listen_multiaddress"] = f"/ip4/127.0.0.1/tcp/{free_port()}"
    cfg["ipfs_connector"]["ipfshttp"]["node_multiaddress"] = f"/ip4/127.0.0.1/tcp/{ipfs_port}"
    cfg["api"]["ipfsproxy"]["listen_multiaddress"] = "/ip4/127.0.0.1/tcp/0"
    cfg["api"]["ipfsproxy"]["node_multiaddress"] = f"/ip4/127.0.0.1/tcp/{ipfs_port}"
    cfg["api"]["pinsvcapi"]["http_listen_multiaddress"] = "/ip4/127.0.0.1/tcp/0"
    peer_id = json.load(open(os.path.join(folder, "identity.json")))["id"]
    if edit:
        edit(cfg, peer_id, f"{swarm}/p2p/{peer_id}")
    json.dump(cfg, open(cfg_path, "w"))
    # The CLUSTER_* overrides meant for the app must not reach a headless peer.
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLUSTER_")}
    args = [os.path.join(BIN, "ipfs-cluster-service"), "--config", folder, "daemon"]
    if bootstrap:
        args += ["--bootstrap", bootstrap]
    proc = spawn(args, os.path.join(WORK, f"{name}.log"), env=env)
    return proc, peer_id, f"{swarm}/p2p/{peer_id}", cfg["cluster"]["secret"]


def main():
    global driver
    opts = ArgOptions()
    opts.set_capability("browserName", "wry")
    opts.set_capability("tauri:options", {"application": APP})
    driver = wait("a WebDriver session", lambda: webdriver.Remote(os.environ["WEBDRIVER"], options=opts))
    driver.set_window_size(1100, 760)

    # First run, by keyboard alone: join the cluster of a headless peer ("server") with the
    # invitation it would give (its address and secret), as a voting member.
    wait("the first-run screen", lambda: driver.find_element(By.ID, "first-run").is_displayed())
    shot(driver, "first-run")
    _, server_id, server_addr, server_secret = headless_peer("server")
    invite = "ipfs-cluster-invite:" + base64.urlsafe_b64encode(json.dumps(
        {"bootstrap": [server_addr], "secret": server_secret}).encode()).decode().rstrip("=")
    # A picture of the invitation's QR code dropped on the first-run screen fills the form
    # (and joins nothing by itself); the keyboard join below starts from an empty field.
    picture = os.path.join(WORK, "invite-qr.png")
    subprocess.run(["qrencode", "-s", "6", "-o", picture, invite], check=True)
    driver.execute_script("window.__TAURI__.event.emit('tauri://drag-drop', {paths: [arguments[0]]})", picture)
    # (Read back as the app writes invitations: the same peers and secret, its own JSON.)
    def read_back():
        v = driver.find_element(By.ID, "join-invitation").get_attribute("value")
        if not v.startswith("ipfs-cluster-invite:"):
            return None
        body = v.split(":", 1)[1]
        return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    got = wait("the invitation read from the picture", read_back)
    assert got == {"bootstrap": [server_addr], "secret": server_secret}, got
    assert "came from a picture" in text_of(driver, "#join-from-link")
    assert server_addr in text_of(driver, "#join-from-link"), text_of(driver, "#join-from-link")
    shot(driver, "first-run-picture")
    driver.find_element(By.ID, "join-invitation").send_keys(Keys.CONTROL + "a", Keys.BACKSPACE)
    ok("a picture of an invitation's QR code dropped on the first-run screen fills the Join form")
    driver.execute_script("document.activeElement && document.activeElement.blur()")
    tab_to("the invitation field", lambda f: f[0] == "join-invitation")
    keys(invite)
    tab_to("the voter choice", lambda f: f[0] == "join-voter")
    keys(Keys.SPACE)
    tab_to("Join", lambda f: f[0] == "btn-join")
    keys(Keys.ENTER)
    wait("the peer to be ready", lambda: text_of(driver, "#ov-ready") == "ready", deadline=150)
    wait("IPFS to be connected", lambda: text_of(driver, "#ov-ipfs") == "connected")
    shot(driver, "overview")
    ok("first run, by keyboard alone: the app joins a headless peer's cluster as a voter, with its IPFS node")

    # The secret is in the OS keyring (a real Secret Service), not in a file, and the
    # overview says so.
    folder = os.environ["IPFS_CLUSTER_PATH"]
    assert not os.path.exists(os.path.join(folder, "secret")), "secret file next to the config"
    assert "keyring" in text_of(driver, "#ov-secret"), text_of(driver, "#ov-secret")
    stored = subprocess.run(["secret-tool", "lookup", "service", "ipfs-cluster-desktop",
                             "username", folder], capture_output=True, text=True).stdout.strip()
    assert len(stored) == 64 and "\"secret\"" not in open(os.path.join(folder, "service.json")).read(), stored
    ok("the cluster secret is kept in the OS keyring (Secret Service)")

    # Pin a CID of real content through the Pins view.
    cid = ipfs_add(IPFS_API, f"e2e content {time.time()}".encode())
    click(driver, "button[data-view=pins]")
    driver.find_element(By.ID, "pin-cid").send_keys(cid)
    driver.find_element(By.ID, "pin-name").send_keys("e2e file")
    click(driver, "#btn-pin")
    row = f"tr[data-cid='{cid}']"
    wait("the pin to show pinned", lambda: "pinned" in text_of(driver, row))
    shot(driver, "pins")
    assert cid.encode() in http("POST", f"http://{IPFS_API}/api/v0/pin/ls?stream=true")[1]
    ok("a CID of real content pinned from the app shows pinned")

    # The invitation, and a headless peer that joins with it.
    click(driver, "button[data-view=invite]")
    inv_text = wait("the invitation", lambda: (lambda v: v if v.startswith("ipfs-cluster-invite:") else None)(
        driver.find_element(By.ID, "invite-text").get_attribute("value")))
    wait("the QR code", lambda: driver.find_element(By.CSS_SELECTOR, "#invite-qr svg"))
    shot(driver, "invite")
    body = inv_text.split(":", 1)[1]
    inv = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    headless, peer2_id, _, _ = headless_peer("headless", inv["secret"], inv["bootstrap"][0])
    click(driver, "button[data-view=peers]")
    wait("the headless peer in the peers view",
         lambda: "online" in text_of(driver, f"tr[data-peer='{peer2_id}']"), deadline=120)
    pic = wait("the cluster picture with the three peers", lambda: (lambda v: v if v.startswith("3 peers.") else None)(
        driver.execute_script("return document.querySelector('#peers-graph svg').getAttribute('aria-label')")),
        deadline=60)
    assert "headless reaches" in pic, pic
    # The IPFS nodes the cluster connected, drawn as curves; each peer's round trip.
    pic = wait("the IPFS nodes' links in the picture", lambda: (lambda v: v if "its IPFS node those of" in v else None)(
        driver.execute_script("return document.querySelector('#peers-graph svg').getAttribute('aria-label')")),
        deadline=60)
    assert driver.execute_script("return document.querySelectorAll('#peers-graph path.ipfs-link').length") >= 1, pic
    wait("the server's round trip", lambda: " ms" in text_of(driver, f"tr[data-peer='{server_id}']"), deadline=60)
    shot(driver, "peers")
    assert "online" in text_of(driver, f"tr[data-peer='{server_id}']")
    ok("a second headless peer joins with the app's invitation: three peers in the peers view and its picture")

    # Drag and drop a CID onto the window.
    cid2 = ipfs_add(IPFS_API, f"dropped content {time.time()}".encode())
    driver.execute_script("""
        const dt = new DataTransfer();
        dt.setData('text/plain', arguments[0]);
        document.body.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
    """, cid2)
    wait("the dropped CID to be pinned", lambda: "pinned" in text_of(driver, f"tr[data-cid='{cid2}']"))
    shot(driver, "pins-after-drop")
    ok("dropping a CID on the window pins it")

    # Files dropped on the window go through the same command Tauri's drop event calls.
    dropped = os.path.join(WORK, "dropped-file.txt")
    with open(dropped, "w") as f:
        f.write(f"a dropped file {time.time()}")
    driver.execute_script("window.__TAURI__.core.invoke('add_paths', {paths: [arguments[0]]})", dropped)
    wait("the dropped file to be pinned", lambda: driver.execute_script(
        "return [...document.querySelectorAll('#pins-body tr')].some("
        "r => r.textContent.includes('dropped-file.txt') && r.textContent.includes('pinned'))"))
    ok("a dropped file is added to the real IPFS node and pinned")

    # The Pins view's search, order and status filter, each answered by the peer; Recover.
    def rows():
        return driver.execute_script(
            "return [...document.querySelectorAll('#pins-body tr[data-cid]')].map(r => [r.dataset.cid, r.textContent])")

    def retype(css, text):
        el = driver.find_element(By.CSS_SELECTOR, css)
        el.send_keys(Keys.CONTROL + "a", Keys.BACKSPACE)
        if text:
            el.send_keys(text)
    click(driver, "button[data-view=pins]")
    Select(driver.find_element(By.ID, "pin-order")).select_by_value("name")
    wait("the pins by name (named first, then by CID)", lambda: (lambda r: len(r) == 3
         and "dropped-file.txt" in r[0][1] and r[1][0] == cid and r[2][0] == cid2)(rows()))
    retype("#pin-search", "E2E")
    wait("the pins named from “E2E”", lambda: [c for c, _ in rows()] == [cid])
    retype("#pin-search", "")
    Select(driver.find_element(By.ID, "pin-search-in")).select_by_value("cid")
    retype("#pin-search", cid2[:12])
    wait("the pins whose CID starts so", lambda: [c for c, _ in rows()] == [cid2])
    retype("#pin-search", "")
    Select(driver.find_element(By.ID, "pin-filter")).select_by_value("error")
    wait("no pin in error", lambda: text_of(driver, "#pins-empty") == "No pin matches.")
    Select(driver.find_element(By.ID, "pin-filter")).select_by_value("pinned")
    wait("the three pinned", lambda: len(rows()) == 3)
    Select(driver.find_element(By.ID, "pin-filter")).select_by_value("")
    Select(driver.find_element(By.ID, "pin-order")).select_by_value("cid")
    Select(driver.find_element(By.ID, "pin-search-in")).select_by_value("name")
    # Recover by keyboard (focus, Enter), as a keyboard user does: a click through WebDriver
    # met "element not interactable" for 90 s in one CI run while the button was on screen.
    # Pressed again until told (a redraw between the focus and the key loses the key).
    pressed = [0.0]
    def recover_told():
        if text_of(driver, "#pin-message").startswith("Asked every peer to retry e2e file: pinned on "):
            return True
        # Again only when the last press had a few seconds to be answered.
        if time.monotonic() - pressed[0] > 5:
            driver.execute_script("document.querySelector(\"button[aria-label='Recover e2e file']\").focus()")
            if focused()[1] == "Recover e2e file":
                keys(Keys.ENTER)
                pressed[0] = time.monotonic()
        return False
    wait("the recover told", recover_told)
    ok("the Pins view searches names and CIDs, orders and filters through the peer; Recover says what came of it")

    # A folder dropped on the window: the Add view lists it, takes a name, streams it into
    # IPFS as one folder and pins its one CID, whose listing holds every file.
    album = os.path.join(WORK, "e2e album")
    os.makedirs(os.path.join(album, "day one"))
    with open(os.path.join(album, "notes.txt"), "w") as f:
        f.write(f"notes {time.time()}")
    with open(os.path.join(album, "day one", "photo.jpg"), "wb") as f:
        f.write(os.urandom(3_000_000))
    driver.execute_script("window.__TAURI__.event.emit('tauri://drag-drop', {paths: [arguments[0]]})", album)
    wait("the Add view with the dropped folder", lambda: album in text_of(driver, "#add-items"))
    # The add of the file dropped before may still be ending (its pin shows first): one add
    # at a time, so the form waits for it.
    wait("the Add form to take input", lambda: driver.find_element(By.ID, "add-name").is_enabled())
    driver.find_element(By.ID, "add-name").send_keys("Holiday album")
    shot(driver, "add")
    click(driver, "#btn-add")
    wait("the folder added and pinned",
         lambda: "Added and pinned Holiday album" in text_of(driver, "#add-message"), deadline=120)
    root = text_of(driver, "#add-result").split()[-1]
    _, listing = http("POST", f"http://{IPFS_API}/api/v0/ls?arg={root}")
    links = json.loads(listing)["Objects"][0]["Links"]
    assert [(l["Name"], l["Type"]) for l in links] == [("day one", 1), ("notes.txt", 2)], links
    _, inner = http("POST", f"http://{IPFS_API}/api/v0/ls?arg={links[0]['Hash']}")
    assert [l["Name"] for l in json.loads(inner)["Objects"][0]["Links"]] == ["photo.jpg"], inner
    shot(driver, "add-done")
    ok("a folder dropped on the window is added as one CID holding every file, and pinned")

    # Files chosen in the system's file chooser (GTK's, opened by the backend), by keyboard
    # as a user would: the location bar (Ctrl+L), the path pasted, Enter. Keys sent before the
    # bar is up are lost, so the three are sent again until the chooser has answered.
    chosen = os.path.join(WORK, "chosen file.txt")
    with open(chosen, "w") as f:
        f.write("chosen in the file chooser")
    subprocess.run(["xclip", "-selection", "clipboard"], input=chosen.encode(), check=True)
    click(driver, "#btn-choose-files")
    dialog = wait("the file chooser", lambda: subprocess.run(
        ["xdotool", "search", "--onlyvisible", "--name", "Choose files to add"],
        capture_output=True, text=True).stdout.split())[0]

    def choose():
        subprocess.run(["xdotool", "windowfocus", "--sync", dialog], capture_output=True)
        subprocess.run(["xdotool", "key", "--clearmodifiers", "ctrl+l", "ctrl+v", "Return"], capture_output=True)
        try:
            return wait("the chosen file in the Add list", lambda: chosen in text_of(driver, "#add-items"), deadline=2)
        except AssertionError:
            return None
    wait("the file chooser to answer", choose)
    wait("the focus on the name", lambda: focused()[0] == "add-name")
    shot(driver, "add-chosen")
    click(driver, "#btn-add-clear")
    ok("files chosen in the system's file chooser join the Add list, and the focus goes to their name")

    # A big file's add shows its progress and can be cancelled: nothing is pinned.
    big = os.path.join(WORK, "big.bin")
    with open(big, "wb") as f:
        f.truncate(1_000_000_000)
    driver.execute_script("window.__TAURI__.event.emit('tauri://drag-drop', {paths: [arguments[0]]})", big)
    wait("the Add view with the big file", lambda: big in text_of(driver, "#add-items"))
    click(driver, "#btn-add")
    wait("the progress moving", lambda: " MB of 1.0 GB" in text_of(driver, "#add-progress-text"))
    shot(driver, "add-progress")
    click(driver, "#btn-add-cancel")
    wait("the cancel told", lambda: "cancelled: nothing was pinned" in text_of(driver, "#add-message"))
    _, listed = http("GET", f"http://{REST_API}/allocations", headers=rest_auth())
    assert b"big.bin" not in listed, listed
    click(driver, "#btn-add-clear")
    ok("a big file's add shows its progress, and a cancel leaves nothing pinned")

    # Keyboard only: to the Pins tab, pin a CID, open its details, unpin it after confirming.
    cid3 = ipfs_add(IPFS_API, f"keyboard content {time.time()}".encode())
    driver.execute_script("document.activeElement && document.activeElement.blur()")
    tab_to("the view tabs", lambda f: f[0].startswith("tab-"))
    for _ in range(6):
        if focused()[0] == "tab-pins":
            break
        keys(Keys.ARROW_DOWN)
    assert focused()[0] == "tab-pins", focused()
    wait("the Pins view", lambda: driver.find_element(By.ID, "view-pins").is_displayed())
    tab_to("the CID field", lambda f: f[0] == "pin-cid")
    keys(cid3, Keys.TAB, "keyboard pin", Keys.ENTER)
    wait("the keyboard pin to show pinned", lambda: "pinned" in text_of(driver, f"tr[data-cid='{cid3}']"))
    tab_to("the pin's Details button", lambda f: f[1] == "Details of keyboard pin")
    keys(Keys.ENTER)
    wait("the pin's details", lambda: cid3 in text_of(driver, f"[id='detail-{cid3}'] .facts"))
    shot(driver, "pin-details")
    # Opened in the browser (xdg-open, $BROWSER) through this computer's IPFS gateway.
    tab_to("the pin's Open in browser button", lambda f: f[1] == "Open in browser: keyboard pin")
    keys(Keys.ENTER)
    opened = os.path.join(WORK, "opened-urls")
    url = wait("the browser opened", lambda: os.path.exists(opened) and open(opened).read().strip())
    assert url.startswith("http://127.0.0.1:") and url.endswith(f"/ipfs/{cid3}"), url
    assert f"Opened {url}" in text_of(driver, "#pin-message"), text_of(driver, "#pin-message")
    _, served = http("GET", url)
    assert served.startswith(b"keyboard content "), served
    ok("a pin opens in the browser through the local IPFS gateway, which serves its content")
    click(driver, f"button[aria-label='Copy the CID of keyboard pin']")
    wait("the CID copied", lambda: text_of(driver, "#pin-message") == "CID copied.")
    pasted = subprocess.run(["xclip", "-selection", "clipboard", "-o"], capture_output=True, text=True).stdout
    assert pasted == cid3, pasted
    ok("a pin's CID is copied to the system clipboard")
    tab_to("the pin's Unpin button", lambda f: f[1] == "Unpin keyboard pin")
    keys(Keys.ENTER)
    wait("the confirmation to take the focus", lambda: focused()[1] == "Yes, unpin keyboard pin")
    keys(Keys.ENTER)
    wait("the unpin", lambda: "Unpinned keyboard pin" in text_of(driver, "#pin-message"))
    wait("the row to leave", lambda: not text_of(driver, f"tr[data-cid='{cid3}']"))
    ok("by keyboard alone: a pin made, its details opened, then unpinned after a confirmation")

    # The overview counts this peer's pins by status, pushed as they change (the two CIDs,
    # the file and the folder pinned above).
    click(driver, "button[data-view=overview]")
    wait("the overview to count four pins pinned here",
         lambda: text_of(driver, "#ov-here-pinned").split()[-1] == "4")
    assert text_of(driver, "#ov-here-errors").split()[-1] == "0", text_of(driver, "#ov-here")
    assert text_of(driver, "#ov-pins") == "4", text_of(driver, "#ov-pins")
    # The charts have the samples the app took every 10 s, window open or not.
    said = wait("a sample in the pins chart", lambda: (lambda v: v if "now Pinned" in v else None)(
        driver.execute_script("return document.querySelector('#chart-pins svg').getAttribute('aria-label')")))
    assert said.startswith("Pins on this peer, last hour: now Pinned "), said
    assert driver.execute_script("return document.querySelectorAll('#chart-pins path').length") == 4
    # The IPFS node's traffic (stats/bw), from the second sample on.
    said = wait("a rate in the IPFS traffic chart", lambda: (lambda v: v if "now In" in v else None)(
        driver.execute_script("return document.querySelector('#chart-ipfs-traffic svg').getAttribute('aria-label')")),
        deadline=60)
    assert said.startswith("IPFS traffic, last hour: now In "), said
    # Free space of the peers with the least: the three of the cluster, by name.
    said = driver.execute_script("return document.querySelector('#chart-peers-free svg').getAttribute('aria-label')")
    assert said.startswith("Free space, peers with the least, last hour: now ") and "server" in said, said
    shot(driver, "overview-pins")
    ok("the overview counts the pins here by status as they change, and charts them over time")

    # Settings: the API's address and credential for other tools; the log level saved applies
    # at once, and the Logs view shows the new lines as they come (debug ones among them).
    click(driver, "button[data-view=settings]")
    wait("the settings", lambda: REST_API.split(":")[-1] in text_of(driver, "#settings-api"))
    assert "••••" in text_of(driver, "#api-password")
    # About: the build, as `--version` says it (the release and the commit).
    version = subprocess.run([APP, "--version"], capture_output=True, text=True, check=True).stdout.split()[-1]
    assert "+git" in version and text_of(driver, "#about-version") == version, version
    assert version.split("+git")[1] in text_of(driver, "#about-commit")
    shot(driver, "settings")
    Select(driver.find_element(By.ID, "set-log-level")).select_by_value("debug")
    click(driver, "#btn-save-settings")
    wait("the settings saved", lambda: text_of(driver, "#settings-message") == "Settings saved.")
    with open(os.path.join(os.environ["IPFS_CLUSTER_PATH"], "desktop.json")) as f:
        assert json.load(f)["log_level"] == "debug"
    click(driver, "button[data-view=logs]")
    wait("debug lines in the Logs view", lambda: driver.execute_script(
        "return document.querySelectorAll('#log-lines li.log-debug').length") > 0)
    shot(driver, "logs")
    retype("#log-text", "notification")
    wait("only the lines with “notification”", lambda: (lambda t: t and all("notification" in x.lower() for x in t))(
        driver.execute_script("return [...document.querySelectorAll('#log-lines li')].map(l => l.textContent)")))
    retype("#log-text", "")
    # The log files, in the XDG state folder, and their folder opened from Settings.
    click(driver, "button[data-view=settings]")
    log_dir = wait("the log folder shown", lambda: text_of(driver, "#log-folder"))
    assert log_dir == os.path.join(os.environ["HOME"], ".local", "state", "ipfs-cluster-desktop", "logs"), log_dir
    with open(os.path.join(log_dir, "ipfs-cluster-desktop.log"), errors="replace") as f:
        assert "notification" in f.read()
    click(driver, "#btn-open-logs")
    wait("the log folder opened", lambda: log_dir in open(os.path.join(WORK, "opened-urls")).read())
    click(driver, "button[data-view=logs]")
    ok("settings saved apply at once (debug lines in the Logs view), the API credential is shown for other tools, About names the build")

    # A peer lost: once its pings stop arriving, the app tells it as a system notification
    # (the Logs view shows each one told; the session bus carries it to the notification
    # service, which this session has not: nothing draws it).
    headless.terminate()
    headless.wait(timeout=60)
    wait("the lost peer told", lambda: "Peer headless is unreachable" in text_of(driver, "#log-lines"), deadline=120)
    # Sent to the desktop's notification service (org.freedesktop.Notifications.Notify).
    wait("the notification on the session bus", lambda: "Peer headless is unreachable" in open(
        os.path.join(WORK, "notifications.log"), errors="replace").read())
    with open(os.path.join(WORK, "notifications.log"), errors="replace") as f:
        assert "member=Notify" in f.read()
    ok("a peer lost is told as a notification")

    # Every view in the dark theme (as a system set to dark gives it), checked by axe again:
    # the dark colours keep their contrast too.
    driver.execute_script("window.__TAURI__.window.getCurrentWindow().setTheme('dark')")
    wait("the dark theme", lambda: driver.execute_script(
        "return matchMedia('(prefers-color-scheme: dark)').matches"))
    # Each view once what it shows has arrived.
    shown = {"overview": "#ov-here", "peers": "tr[data-peer]", "pins": "#pins-body tr",
             "add": "#add-empty", "invite": "#invite-qr svg", "settings": "#settings-api",
             "logs": "#log-lines li"}
    for view, css in shown.items():
        click(driver, f"button[data-view={view}]")
        wait(f"the {view} view", lambda: driver.find_element(By.CSS_SELECTOR, css).is_displayed())
        shot(driver, f"{view}-dark")
    driver.execute_script("window.__TAURI__.window.getCurrentWindow().setTheme(null)")
    ok("every view in the dark theme passes axe too")

    # Launched for an invitation link (as the desktop launches the link's handler): the running
    # app takes it; this computer is in a cluster already, so it says why it does not join.
    subprocess.run([APP, inv_text], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    wait("the link told in the peers view", lambda: "already a peer of a cluster" in text_of(driver, "#peers-message"))
    ok("an invitation link launched for the app reaches the running app's window")

    # Closing the window leaves the peer running in the tray.
    try:
        driver.execute_script("window.__TAURI__.window.getCurrentWindow().close()")
    except WebDriverException:
        pass  # the session may end with the window
    wait("the window to be hidden", lambda: not window_visible(), deadline=30)
    status, _ = wait("the REST API after closing the window",
                     lambda: http("GET", f"http://{REST_API}/health"))
    assert status == 204, status
    try:
        http("GET", f"http://{REST_API}/allocations")
        raise AssertionError("the app's REST API answered without its credential")
    except urllib.error.HTTPError as e:
        assert e.code == 401, e.code
    _, listed = http("GET", f"http://{REST_API}/allocations", headers=rest_auth())
    assert cid.encode() in listed and cid2.encode() in listed, listed
    ok("closing the window keeps the peer answering on its REST API")

    # Closing released the window; launching the app again (its desktop entry, a second
    # instance) makes the running app open a new one.
    again = subprocess.Popen([APP], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait("the window to open again", window_visible, deadline=60)
    again.wait(timeout=60)
    ok("launching the app again reopens its window")

    ok(f"axe-core finds no WCAG 2.1 AA violation on any view shown ({', '.join(checked)})")

    # Killed (as a crash ends it): the next start tells that the last run did not end cleanly,
    # and where its log is; a SIGTERM (a logout) ends that run cleanly.
    def app_pids():
        return subprocess.run(["pgrep", "-f", f"^{APP}"], capture_output=True, text=True).stdout.split()
    notices = os.path.join(WORK, "notifications.log")
    told_before = len(open(notices, errors="replace").read())
    for p in app_pids():
        os.kill(int(p), signal.SIGKILL)
    wait("the app to be gone", lambda: not app_pids())
    again = subprocess.Popen([APP, "--hidden"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait("the unclean end told", lambda: "did not shut down cleanly" in open(notices, errors="replace").read()[told_before:])
    assert "ipfs-cluster-desktop.log" in open(notices, errors="replace").read()[told_before:]
    # In the tray, no GL driver is loaded (GDK's GL is off: tens of MB saved); the window
    # opened from the tray is still drawn on screen, as X shows it (not WebKit's snapshot).
    tray_pid = wait("the tray app's process", lambda: app_pids() and app_pids()[0])
    maps = open(f"/proc/{tray_pid}/maps").read()
    assert "_dri.so" not in maps and "libLLVM" not in maps, "a GL driver in the tray process"
    subprocess.run([APP], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    wait("the window opened from the tray", window_visible, deadline=60)
    wait("the window drawn on screen (the sidebar's colour in the X root window)",
         lambda: on_screen((11, 79, 92)) > 1000, deadline=60)
    ok("in the tray no GL driver is loaded; a window opened from there is drawn on screen")
    again.terminate()
    assert again.wait(timeout=60) == 0, "SIGTERM ends the app cleanly"
    assert not os.path.exists(os.path.join(log_dir, "running")), "the run is marked ended"
    ok("after a crash the next start says so and where the log is; SIGTERM ends the app cleanly")
    try:
        driver.quit()
    except WebDriverException:
        pass
    follow_a_cluster(opts, folder)


def follow_a_cluster(opts, folder):
    """"Follow a cluster": the app, with a fresh folder (the joined peer's moved away), follows
    a CRDT cluster by its follow link (a headless trusted peer's template served over HTTP):
    it lists the trusted peer's pin, its views say it is read-only and offer no pin or add."""
    global driver
    import http.server
    import shutil
    import threading
    shutil.move(folder, folder + "-joined")

    def trust_itself(cfg, peer_id, address):
        cfg["consensus"]["crdt"]["cluster_name"] = "e2e-followed"
        cfg["consensus"]["crdt"]["trusted_peers"] = [peer_id]
        cfg["cluster"]["peer_addresses"] = [address]
        cfg["cluster"]["monitor_ping_interval"] = "2s"
    _, trusted_id, _, _ = headless_peer("trusted", consensus="crdt", edit=trust_itself)
    trusted_cfg = os.path.join(WORK, "trusted", "service.json")
    template = open(trusted_cfg, "rb").read()

    class Template(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/cluster.json" else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            if self.path == "/cluster.json":
                self.wfile.write(template)

        def log_message(self, *args):
            pass
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Template)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/cluster.json"
    rest = json.load(open(trusted_cfg))["api"]["restapi"]["http_listen_multiaddress"]
    ctl = [os.path.join(BIN, "ipfs-cluster-ctl"), "--host", rest]
    # An identity CID (its content is in it): nothing to fetch for anyone.
    data = b"chosen by the cluster"
    cid = "b" + base64.b32encode(bytes([1, 0x55, 0, len(data)]) + data).decode().lower().rstrip("=")
    wait("the trusted peer to take a pin", lambda: subprocess.run(
        ctl + ["pin", "add", "--name", "chosen by the cluster", cid], capture_output=True).returncode == 0)

    driver = wait("a WebDriver session", lambda: webdriver.Remote(os.environ["WEBDRIVER"], options=opts))
    driver.set_window_size(1100, 760)
    wait("the first-run screen", lambda: driver.find_element(By.ID, "first-run").is_displayed())
    driver.find_element(By.ID, "follow-url").send_keys("not a link")
    click(driver, "#btn-follow")
    wait("the bad link refused beside the field",
         lambda: "starts with http" in text_of(driver, "#follow-error"))
    assert focused()[0] == "follow-url", focused()
    driver.find_element(By.ID, "follow-url").send_keys(Keys.CONTROL + "a", Keys.BACKSPACE)
    driver.find_element(By.ID, "follow-url").send_keys(url)
    click(driver, "#btn-follow")
    wait("the follower to run", lambda: "read-only" in text_of(driver, "#ov-role"), deadline=150)
    shot(driver, "following-overview")
    ok("first run, Follow a cluster: a bad link is refused beside the field; a CRDT cluster's follow link makes a read-only follower")
    click(driver, "#tab-pins")
    wait("the Pins view", lambda: driver.find_element(By.ID, "view-pins").is_displayed())
    wait("the cluster's pin listed", lambda: "chosen by the cluster" in text_of(driver, "#view-pins"),
         deadline=120)
    note = text_of(driver, "#read-only-note")
    assert "read-only" in note and url in note, note
    assert not driver.find_elements(By.ID, "pin-form"), "a follower is offered no pin form"
    tabs = [t.get_attribute("id") for t in driver.find_elements(By.CSS_SELECTOR, "[id^=tab-]")]
    assert "tab-invite" not in tabs, tabs
    shot(driver, "following-pins")
    ok(f"the follower lists the trusted peer {trusted_id[-6:]}'s pin, says it is read-only and offers no pin or invite")
    server.shutdown()
    try:
        driver.quit()
    except WebDriverException:
        pass


def on_screen(rgb):
    """How many pixels of the X screen (every 4th of every 4th row) have colour `rgb`: the
    root window as `xwd` dumps it (32-bit ZPixmap)."""
    import struct
    data = subprocess.run(["xwd", "-root", "-silent"], capture_output=True, check=True).stdout
    h = struct.unpack(">25I", data[:100])
    size, width, height, order, bpp, line, ncolors = h[0], h[4], h[5], h[7], h[11], h[12], h[19]
    assert bpp in (24, 32), f"xwd: {bpp} bits a pixel"
    step = bpp // 8
    px = data[size + ncolors * 12:]
    want = (rgb[0] << 16) | (rgb[1] << 8) | rgb[2]
    endian = "little" if order == 0 else "big"
    return sum(1 for y in range(0, height, 4) for x in range(0, width, 4)
               if int.from_bytes(px[y * line + x * step:y * line + x * step + step], endian) & 0xFFFFFF == want)


def window_visible():
    out = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", "IPFS Cluster Desktop"],
                         capture_output=True, text=True)
    return bool(out.stdout.strip())


def run(main):
    """Runs `main`, prints the summary line CI counts (`e2e: N passed; F failed`), keeps a
    screenshot and the page's text of a failure, stops every process started, and exits."""
    failed = 0
    try:
        main()
    except Exception as e:
        failed = 1
        print(f"not ok - {e!r}", flush=True)
        if driver is not None:
            try:
                driver.save_screenshot(os.path.join(SHOTS, "failure.png"))
                print(driver.execute_script("return document.body.innerText"), flush=True)
            except Exception:
                pass
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
    print(f"e2e: {passed} passed; {failed} failed")
    sys.exit(failed)


if __name__ == "__main__":
    run(main)
