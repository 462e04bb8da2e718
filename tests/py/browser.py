"""The bucket browser (`?browser=true`) in headless Chromium, driven by Selenium.

Fills a bucket with 1,200 objects in folders, then in the browser: lists the buckets, opens the
bucket, pages forward and back, navigates into a folder and pages through all of it, and
downloads one object through its (presigned) link; the downloaded bytes must match. A
screenshot goes to the path in OZONE_TEST_SCREENSHOT (test_bucket_browser).

With an access key and secret (security on, `ozone s3 getsecret`): a bucket of 40 objects in
folders owned by that user; the page opens asking for credentials, a wrong secret and an unknown
key show the 403 and ask again, the right ones list the bucket, a folder, and a presigned
download whose bytes match (test_bucket_browser_with_security_on, with the user's credentials in
OZONE_TEST_ACCESS_KEY and OZONE_TEST_SECRET).

The Rust tests run one case each (`pytest browser.py::CASE`), against clusters with security
off and on.
"""
import os
import random
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

from common import endpoint, env, s3, secure

# Selenium must not try to fetch a driver or a browser: Debian's chromium and chromium-driver.
os.environ["SE_OFFLINE"] = "true"
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

BUCKET = "browser-test"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def layout():
    """1,200 keys: 300 at the top, 250 in docs/, 450 in images/, 200 in logs/2024/."""
    keys = [f"top-{i:04d}.txt" for i in range(300)]
    keys += [f"docs/doc-{i:04d}.bin" for i in range(250)]
    keys += [f"images/img-{i:04d}.png" for i in range(450)]
    keys += [f"logs/2024/log-{i:04d}.log" for i in range(200)]
    assert len(keys) == 1200
    return keys


def body(key):
    if key == "docs/doc-0123.bin":
        return random.Random(123).randbytes(300 * 1024 + 17)
    return f"object {key}\n".encode() * (1 + len(key) % 7)


def fill(client):
    client.create_bucket(Bucket=BUCKET)
    keys = layout()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: client.put_object(Bucket=BUCKET, Key=k, Body=body(k)), keys))
    return keys


def driver(download_dir):
    if not os.path.exists(CHROMIUM) or not os.path.exists(CHROMEDRIVER):
        raise AssertionError(f"{CHROMIUM} and {CHROMEDRIVER} are needed (apt-get install chromium chromium-driver; .ci/setup.sh does)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              "--window-size=1280,1600"]:
        opts.add_argument(a)
    opts.add_experimental_option("prefs", {
        "download.default_directory": download_dir,
        "download.prompt_for_download": False,
    })
    d = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    d.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": download_dir})
    return d


def wait_ready(d, page=None, timeout=30):
    """Waits until the page finished rendering (page number `page`, if given); fails on an error."""
    def ready(drv):
        st, pg, msg = drv.execute_script(
            "const b = document.body, s = document.getElementById('status');"
            "return b ? [b.dataset.state || '', b.dataset.page || '', s ? s.textContent : ''] : ['', '', ''];")
        if st == "error":
            raise AssertionError("page error: " + msg)
        return st == "ready" and (page is None or pg == str(page))
    WebDriverWait(d, timeout).until(ready)


def rows(d, cls):
    return d.find_elements(By.CSS_SELECTOR, f"#listing tbody tr.{cls}")


def keys_on_page(d):
    """The object keys listed now (read in one script: the rows may be replaced meanwhile)."""
    return d.execute_script(
        "return Array.from(document.querySelectorAll('#listing tbody tr.object'), r => r.dataset.key)")


def folders_on_page(d):
    return d.execute_script(
        "return Array.from(document.querySelectorAll('#listing tbody tr.folder'), r => r.dataset.prefix)")


def check_signing(d):
    """The page's SigV4 (header form and presigned URLs) equals botocore's for the same request,
    time and credentials, keys with characters that need encoding included: what the page sends
    is what a gateway verifying signatures (security on) expects."""
    import datetime
    import urllib.parse
    from unittest import mock

    import botocore.auth
    from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    ak, sk = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
    saved = d.execute_script("return [sessionStorage.getItem('ozone.accessKey'),"
                             " sessionStorage.getItem('ozone.secretKey')];")
    d.execute_script("sessionStorage.setItem('ozone.accessKey', arguments[0]);"
                     "sessionStorage.setItem('ozone.secretKey', arguments[1]);", ak, sk)
    creds = Credentials(ak, sk)
    when = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    iso = "2026-01-02T03:04:05Z"
    empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=when):
        for key in ["docs/doc-0123.bin", "a b/c+d=e&f.txt", "\u00fcn\u00ef/c\u00f6d\u00e9~*!'().bin"]:
            url = d.execute_async_script(
                "presign(arguments[0], arguments[1], new Date(arguments[2])).then(arguments[3])",
                BUCKET, key, iso)
            path, query = url.split("?", 1)
            assert path == f"/{BUCKET}/" + urllib.parse.quote(key, safe="/~"), (path, key)
            req = AWSRequest(method="GET", url=endpoint() + path)
            S3SigV4QueryAuth(creds, "s3", "us-east-1", expires=3600).add_auth(req)
            want = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(req.url).query))
            got = dict(urllib.parse.parse_qsl(query))
            assert got == want, f"presigned URL differs for {key!r}:\n page {got}\n boto {want}"

            params = {"list-type": "2", "delimiter": "/", "prefix": key, "max-keys": "100",
                      "continuation-token": "ZG9jcy8-_"}
            headers = d.execute_async_script(
                "authorize(arguments[0], arguments[1], new Date(arguments[2])).then(arguments[3])",
                f"/{BUCKET}", params, iso)
            req = AWSRequest(method="GET", url=endpoint() + f"/{BUCKET}?" + urllib.parse.urlencode(params, quote_via=urllib.parse.quote, safe="-_.~"),
                             headers={"X-Amz-Content-SHA256": empty})
            S3SigV4Auth(creds, "s3", "us-east-1").add_auth(req)
            assert headers["authorization"] == req.headers["Authorization"], \
                f"header signature differs:\n page {headers['authorization']}\n boto {req.headers['Authorization']}"
            assert headers["x-amz-date"] == req.headers["X-Amz-Date"]
    # The tab's own credentials (none with security off) are as they were.
    d.execute_script("sessionStorage.clear();"
                     "if (arguments[0] !== null) sessionStorage.setItem('ozone.accessKey', arguments[0]);"
                     "if (arguments[1] !== null) sessionStorage.setItem('ozone.secretKey', arguments[1]);",
                     *saved)


SECURE_BUCKET = "secure-browser"


def secure_layout():
    """40 keys: 10 at the top, 20 in docs/, 10 in logs/2024/."""
    keys = [f"top-{i:02d}.txt" for i in range(10)]
    keys += [f"docs/doc-{i:02d}.bin" for i in range(20)]
    keys += [f"logs/2024/log-{i:02d}.log" for i in range(10)]
    return keys


def secure_body(key):
    if key == "docs/doc-07.bin":
        return random.Random(7).randbytes(200 * 1024 + 5)
    return f"secure {key}\n".encode() * 3


def page_state(d):
    """(body data-state, status text, credentials form highlighted, hint, listed rows)."""
    return d.execute_script(
        "const b = document.body;"
        "return [b.dataset.state || '', document.getElementById('status').textContent,"
        " document.getElementById('creds').classList.contains('needed'),"
        " document.getElementById('creds-hint').textContent,"
        " document.querySelectorAll('#listing tbody tr').length];")


def wait_state(d, want, timeout=30):
    WebDriverWait(d, timeout).until(lambda drv: page_state(drv)[0] == want)
    return page_state(d)


def enter_creds(d, key, secret):
    for name, value in [("access-key", key), ("secret-key", secret)]:
        field = d.find_element(By.ID, name)
        field.clear()
        field.send_keys(value)
    d.find_element(By.ID, "save-creds").click()


def test_bucket_browser_with_security_on():
    """Security on: the page asks for credentials, shows a 403 for wrong ones, works with the
    user's own."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    ak, sk = env("OZONE_TEST_ACCESS_KEY"), env("OZONE_TEST_SECRET")
    shot = env("OZONE_TEST_SCREENSHOT")
    client = boto3.client(
        "s3", endpoint_url=endpoint(), region_name="us-east-1",
        aws_access_key_id=ak, aws_secret_access_key=sk,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}))
    # The gateway checks signatures: the credentials the open page defaults to are refused.
    try:
        boto3.client("s3", endpoint_url=endpoint(), region_name="us-east-1",
                     aws_access_key_id="browser", aws_secret_access_key="unused-with-security-off",
                     config=Config(s3={"addressing_style": "path"})).list_buckets()
        raise AssertionError("security is off: an unknown access key was accepted")
    except ClientError as e:
        assert e.response["Error"]["Code"] == "InvalidAccessKeyId", e.response
    client.create_bucket(Bucket=SECURE_BUCKET)
    keys = secure_layout()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: client.put_object(Bucket=SECURE_BUCKET, Key=k, Body=secure_body(k)), keys))
    print(f"filled {SECURE_BUCKET} with {len(keys)} objects as {ak}", flush=True)

    downloads = tempfile.mkdtemp(prefix="browser-dl-")
    d = driver(downloads)
    try:
        url = endpoint() + f"/{SECURE_BUCKET}?browser=true"
        # No credentials in this tab: the page asks for them (empty form, highlighted), lists nothing.
        d.get(url)
        st, msg, needed, hint, n = wait_state(d, "credentials")
        assert needed and n == 0, (st, msg, needed, hint, n)
        assert "Security is on" in hint and "ozone s3 getsecret" in hint, hint
        assert d.find_element(By.ID, "access-key").get_attribute("value") == ""
        assert d.find_element(By.ID, "secret-key").get_attribute("value") == ""
        assert d.switch_to.active_element.get_attribute("id") == "access-key"
        print(f"no credentials: {msg} / {hint}", flush=True)
        ask_shot = shot[:-len(".png")] + "-ask.png" if shot.endswith(".png") else shot + "-ask.png"
        d.save_screenshot(ask_shot)
        print(f"screenshot: {ask_shot}", flush=True)

        # A wrong secret: the gateway's 403 is shown and the form asks again.
        enter_creds(d, ak, "not-" + sk)
        st, msg, needed, hint, n = wait_state(d, "error")
        assert "SignatureDoesNotMatch" in msg and needed and n == 0, (msg, needed, n)
        assert "Access denied (SignatureDoesNotMatch)" in hint, hint
        print(f"wrong secret: {msg} / {hint}", flush=True)
        # An unknown access key: the same.
        enter_creds(d, "nobody-" + ak, sk)
        WebDriverWait(d, 30).until(lambda drv: "InvalidAccessKeyId" in page_state(drv)[1])
        st, msg, needed, hint, n = page_state(d)
        assert st == "error" and needed and n == 0, (st, msg, needed, n)
        print(f"unknown key: {msg}", flush=True)

        # The user's own credentials: the bucket is listed (2 folders, 10 objects).
        enter_creds(d, ak, sk)
        wait_ready(d, page=1)
        assert not page_state(d)[2], "form still highlighted"
        folders = folders_on_page(d)
        assert folders == ["docs/", "logs/"], folders
        top = keys_on_page(d)
        assert top == [k for k in keys if "/" not in k], top
        # Into docs/.
        [f for f in d.find_elements(By.CSS_SELECTOR, "a.folder-link") if f.text == "docs/"][0].click()
        WebDriverWait(d, 30).until(lambda drv: keys_on_page(drv)[:1] == ["docs/doc-00.bin"])
        wait_ready(d, page=1)
        in_docs = keys_on_page(d)
        assert in_docs == [k for k in keys if k.startswith("docs/")], in_docs
        crumbs = [a.text for a in d.find_elements(By.CSS_SELECTOR, "#breadcrumb a")]
        assert crumbs == [SECURE_BUCKET, "docs"], crumbs
        d.execute_script("window.scrollTo(0, 0)")
        d.save_screenshot(shot)
        print(f"screenshot: {shot}", flush=True)

        # Download through the presigned link; the bytes must match.
        href, got = download(d, downloads, "docs/doc-07.bin")
        assert f"X-Amz-Credential={ak}%2F" in href and "X-Amz-Signature=" in href, href
        assert got == secure_body("docs/doc-07.bin"), f"downloaded {len(got)} bytes that differ"
        # The same link with its signature tampered is refused by the gateway.
        tampered = href[:-1] + ("0" if href[-1] != "0" else "1")
        status, _, data = raw_get(tampered)
        assert status == 403 and b"SignatureDoesNotMatch" in data, (status, data[:200])

        # The tab keeps the credentials: the bucket list (ListBuckets as this user) works at once.
        d.get(endpoint() + "/?browser=true")
        wait_ready(d)
        names = [a.text for a in d.find_elements(By.CSS_SELECTOR, "a.bucket-link")]
        assert SECURE_BUCKET in names, names
    finally:
        d.quit()
    print("secure browser OK", flush=True)


def download(d, downloads, key):
    """Clicks the download link of `key` on the page; returns its href and the downloaded bytes."""
    link = d.find_element(By.CSS_SELECTOR, f'tr.object[data-key="{key}"] a.download')
    href = link.get_attribute("href")
    link.click()
    target = os.path.join(downloads, key.rsplit("/", 1)[-1])
    deadline = time.time() + 60
    while not os.path.exists(target) and time.time() < deadline:
        time.sleep(0.2)
    assert os.path.exists(target), f"no download in {downloads}: {os.listdir(downloads)}"
    with open(target, "rb") as f:
        return href, f.read()


def raw_get(url):
    """A plain GET of a full URL, no credentials added: (status, headers, body)."""
    import urllib.error
    import urllib.request
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_bucket_browser():
    """1,200 objects listed, paged, navigated; one downloaded. With security on (the shared
    cluster under OZONE_TEST_SECURE=1) the page first asks for credentials and gets the test
    user's (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY); the rest is the same."""
    shot = env("OZONE_TEST_SCREENSHOT")
    client = s3()
    keys = fill(client)
    print(f"filled {BUCKET} with {len(keys)} objects", flush=True)

    downloads = tempfile.mkdtemp(prefix="browser-dl-")
    d = driver(downloads)
    try:
        # The bucket list.
        d.get(endpoint() + "/?browser=true")
        if secure():
            st, msg, needed, hint, n = wait_state(d, "credentials")
            assert needed and n == 0, (st, msg, needed, hint, n)
            enter_creds(d, env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY"))
        wait_ready(d)
        assert d.find_element(By.ID, "access-key").get_attribute("value"), "credentials not pre-filled"
        links = {a.text: a for a in d.find_elements(By.CSS_SELECTOR, "a.bucket-link")}
        assert BUCKET in links, f"bucket not listed: {list(links)}"
        links[BUCKET].click()

        # The bucket's first page: 3 folders and the first 97 top-level objects (100 a page).
        wait_ready(d, page=1)
        folders = folders_on_page(d)
        assert folders == ["docs/", "images/", "logs/"], folders
        first = keys_on_page(d)
        assert len(first) + len(folders) == 100, (len(first), len(folders))
        assert first[0] == "top-0000.txt", first[:3]
        row = rows(d, "object")[0]
        size = row.find_element(By.CSS_SELECTOR, "td.size").text
        modified = row.find_element(By.CSS_SELECTOR, "td.modified").text
        assert size == f"{len(body(first[0]))} B", size
        assert modified[:2] == "20" and len(modified) == 19, modified
        # Pages: forward through all top-level objects, then back.
        seen = list(first)
        page = 1
        while d.find_element(By.ID, "next").is_enabled():
            d.find_element(By.ID, "next").click()
            page += 1
            wait_ready(d, page=page)
            seen += keys_on_page(d)
        assert seen == [k for k in keys if "/" not in k], (len(seen), seen[-3:])
        assert page == 4, page
        d.find_element(By.ID, "prev").click()
        wait_ready(d, page=3)
        assert keys_on_page(d)[0] == seen[97 + 100], keys_on_page(d)[:2]

        # Into a folder, and through its 250 objects in 3 pages.
        d.get(endpoint() + f"/{BUCKET}?browser=true")
        wait_ready(d, page=1)
        [f for f in d.find_elements(By.CSS_SELECTOR, "a.folder-link") if f.text == "docs/"][0].click()
        WebDriverWait(d, 30).until(lambda drv: keys_on_page(drv)[:1] == ["docs/doc-0000.bin"])
        wait_ready(d, page=1)
        crumbs = [a.text for a in d.find_elements(By.CSS_SELECTOR, "#breadcrumb a")]
        assert crumbs == [BUCKET, "docs"], crumbs
        in_docs = keys_on_page(d)
        page = 1
        while d.find_element(By.ID, "next").is_enabled():
            d.find_element(By.ID, "next").click()
            page += 1
            wait_ready(d, page=page)
            in_docs += keys_on_page(d)
        assert in_docs == [k for k in keys if k.startswith("docs/")], len(in_docs)
        assert page == 3, page
        d.find_element(By.ID, "prev").click()
        wait_ready(d, page=2)
        assert "docs/doc-0123.bin" in keys_on_page(d)
        d.execute_script("window.scrollTo(0, 0)")
        d.save_screenshot(shot)
        print(f"screenshot: {shot}", flush=True)

        # Download one object through its link; the bytes must match.
        href, got = download(d, downloads, "docs/doc-0123.bin")
        assert "X-Amz-Signature=" in href, href
        assert got == body("docs/doc-0123.bin"), f"downloaded {len(got)} bytes that differ"

        check_signing(d)

        # Nested folders: logs/ -> logs/2024/.
        d.get(endpoint() + f"/{BUCKET}?browser=true#prefix=logs%2F")
        WebDriverWait(d, 30).until(lambda drv: folders_on_page(drv) == ["logs/2024/"])
        wait_ready(d)
        d.find_element(By.CSS_SELECTOR, "a.folder-link").click()
        WebDriverWait(d, 30).until(lambda drv: len(keys_on_page(drv)) == 100 and keys_on_page(drv)[0].startswith("logs/2024/"))
    finally:
        d.quit()
    print("browser OK", flush=True)
