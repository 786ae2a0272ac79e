"""The web page at `/` in a real browser (Debian's Chromium, driven by Playwright) against the real server:
shared links run on load, typing and submitting with the keyboard alone, the API's errors shown as messages."""

from __future__ import annotations

import re
from urllib.parse import quote

import httpx
import pytest

from bench.harness import REPO, running_server
from senpos.pos_tags import PFR_TAGS, UPOS_NAMES

from .browser import CHROMIUM, launch

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH: `make test` installs Debian's "
                                                         "chromium package (apt-get install chromium)")
sync_api = pytest.importorskip("playwright.sync_api")
sync_api.expect.set_options(timeout=30_000)  # an answer may queue behind other tests' work on a small machine

POS_LIMIT = 40  # SENPOS_MAX_REQUEST_CHARS for /pos-tag on this module's server: a longer text is a 413
REVIEW = ("The first hour is slow and the dialogue is clumsy. But the last act is stunning, and the lead gives a "
          "performance I will not forget. Worth the wait!")
SENTENCES = ["The first hour is slow and the dialogue is clumsy.",
             "But the last act is stunning, and the lead gives a performance I will not forget.", "Worth the wait!"]
CHINESE = "江泽民发表1998年新年讲话。"


@pytest.fixture(scope="module")
def base():
    with running_server({"SENPOS_MAX_REQUEST_CHARS": f"sentiment=200000,pos={POS_LIMIT}"}) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, base):
    """A fresh tab (its own sessionStorage) that fails the test on a script error or on a request to any other
    host than the server: the page must work offline, with nothing from a CDN."""
    context = browser.new_context(viewport={"width": 1200, "height": 900}, base_url=base)
    tab = context.new_page()
    tab.set_default_timeout(60_000)
    errors, elsewhere = [], []
    tab.on("pageerror", lambda e: errors.append(str(e)))
    tab.on("request", lambda r: r.url.startswith((base, "data:")) or elsewhere.append(r.url))
    yield tab
    context.close()
    assert not errors, f"script errors on the page: {errors}"
    assert not elsewhere, f"the page asked for something outside the server: {elsewhere}"


def api(base: str, path: str, texts: list) -> list[dict]:
    answer = httpx.post(f"{base}{path}", json={"texts": texts}, timeout=60)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_index_is_the_page_and_swagger_stays_at_docs(base):
    page = httpx.get(f"{base}/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "/static/page.js" in page.text and "swagger" not in page.text.lower()
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "swagger" in httpx.get(f"{base}/docs", follow_redirects=True).text.lower()
    for asset in ("page.js", "page.css"):
        assert httpx.get(f"{base}/static/{asset}").status_code == 200
    assert httpx.get(f"{base}/static/missing.js").status_code == 404


def test_pos_tag_table_comes_from_senpos_pos_tags(base):
    table = httpx.get(f"{base}/static/pos-tags.json").json()
    assert table["tags"] == {t: {"zh": zh, "en": en, "upos": u} for t, (zh, en, u) in PFR_TAGS.items()}
    assert set(table["upos"]) == {u for _, _, u in PFR_TAGS.values()} | {"X"} == set(UPOS_NAMES)


def test_a_shared_sentiment_link_runs_on_load_with_a_score_per_sentence(page, base):
    page.goto(f"/?task=sentiment&text={quote(REVIEW)}")
    whole, *parts = api(base, "/sentiment", [REVIEW, *SENTENCES])
    verdict = page.locator(".verdict")
    sync_api.expect(verdict.locator(".label")).to_have_text(whole["label"].capitalize())
    sync_api.expect(verdict.locator(".score")).to_have_text(f"P(positive) = {whole['score']:.3f}")
    assert page.locator("#text").input_value() == REVIEW
    rows = page.locator(".sentences li")
    sync_api.expect(rows).to_have_count(3)
    assert rows.locator(".sentence").all_inner_texts() == SENTENCES
    # The score as shown, and the label a screen reader reads after it.
    assert rows.locator(".num").all_text_contents() == [f"{p['score']:.2f} {p['label']}:" for p in parts]
    assert [rows.nth(i).get_attribute("class") for i in range(3)] == [p["label"] for p in parts]


def test_a_shared_pos_link_runs_on_load_and_each_chip_describes_its_tag(page, base):
    page.goto(f"/?task=pos-tag&text={quote(CHINESE)}")
    [expected] = api(base, "/pos-tag", [CHINESE])
    chips = page.locator(".chip")
    sync_api.expect(chips).to_have_count(len(expected["words"]))
    assert chips.locator(".word").all_inner_texts() == expected["words"]
    assert chips.locator(".tag").all_inner_texts() == expected["tags"]
    assert [chips.nth(i).get_attribute("data-upos") for i in range(chips.count())] == expected["upos"]
    assert page.get_by_label("Chinese part-of-speech tagging").is_checked()
    # Keyboard: one Tab stop for the words, arrows move; the focused word's tag is described in Chinese and English.
    chips.first.focus()
    page.keyboard.press("ArrowRight")
    second = chips.nth(1)
    sync_api.expect(second).to_be_focused()
    tip = second.locator(".tip")
    sync_api.expect(tip).to_be_visible()
    zh, en, upos = PFR_TAGS[expected["tags"][1]]
    for described in (zh, en, f"Universal POS: {upos}"):
        sync_api.expect(tip).to_contain_text(described)
    sync_api.expect(page.locator(".legend li")).to_contain_text(["NOUN noun", "VERB verb"])


def tab_to(page, target, most: int = 10) -> None:
    """Press Tab until `target` has the focus: it can be reached with the keyboard."""
    for _ in range(most):
        page.keyboard.press("Tab")
        if target.evaluate("node => node === document.activeElement"):
            return
    raise AssertionError(f"{target} not reached in {most} Tabs")


def test_type_and_submit_with_the_keyboard_alone(page):
    page.goto("/")
    page.keyboard.press("Tab")  # the link to the API documentation
    page.keyboard.press("Tab")  # the task: English sentiment
    page.keyboard.press("ArrowRight")  # Chinese POS tagging
    tab_to(page, page.locator("#text"))  # past the examples
    page.keyboard.type("我们 热爱 和平 。")
    page.keyboard.press("Tab")
    page.keyboard.press("Space")  # already segmented
    page.keyboard.press("Tab")
    sync_api.expect(page.get_by_role("button", name="Analyse")).to_be_focused()
    page.keyboard.press("Enter")
    sync_api.expect(page.locator(".chip .word")).to_have_text(["我们", "热爱", "和平", "。"])
    sync_api.expect(page.locator(".chip").last).to_have_attribute("data-upos", "PUNCT")
    assert "task=pos-tag" in page.url and "segmented=1" in page.url  # the address follows what was run
    # Back to sentiment: type, Ctrl+Enter.
    page.get_by_label("English sentiment").check()
    page.locator("#text").fill("Dreadful. Boring, stupid and far too long.")
    page.locator("#text").press("Control+Enter")
    sync_api.expect(page.locator(".verdict .label")).to_have_text("Negative")
    sync_api.expect(page.get_by_role("status")).to_contain_text("Negative")
    assert page.url.endswith("?task=sentiment&text=Dreadful.+Boring%2C+stupid+and+far+too+long.")


def test_an_example_fills_the_box_and_runs(page):
    page.goto("/?task=pos-tag")
    page.get_by_role("button", name="北京大学的学生在图书馆里认真地学习。").click()
    assert page.locator("#text").input_value() == "北京大学的学生在图书馆里认真地学习。"
    sync_api.expect(page.locator(".chip").first).to_be_visible()
    assert "".join(page.locator(".chip .word").all_inner_texts()) == "北京大学的学生在图书馆里认真地学习。"


def test_the_api_errors_are_shown_as_messages(page):
    page.goto("/?task=sentiment&text=%20%20%20")  # 400: whitespace only
    alert = page.get_by_role("alert")
    sync_api.expect(alert).to_contain_text("could not use this input: text is empty or whitespace only")
    sync_api.expect(page.get_by_role("status")).to_have_text("")  # no spinner left behind
    assert page.locator("#result").is_hidden()
    long_text = "人民生活水平不断提高。" * 5
    page.get_by_label("Chinese part-of-speech tagging").check()
    page.locator("#text").fill(long_text)
    page.get_by_role("button", name="Analyse").click()  # 413: over SENPOS_MAX_REQUEST_CHARS
    sync_api.expect(alert).to_contain_text(f"Too much text for one request: the request has {len(long_text)} "
                                           f"characters in all; the limit is {POS_LIMIT}")
    sync_api.expect(page.get_by_role("status")).to_have_text("")
    page.locator("#text").fill("我们热爱和平。")  # and the page still works after an error
    page.get_by_role("button", name="Analyse").click()
    sync_api.expect(page.locator(".chip").first).to_be_visible()
    assert alert.is_hidden()


def test_it_fits_a_phone_screen(browser, base):
    context = browser.new_context(viewport={"width": 360, "height": 740}, base_url=base, is_mobile=True,
                                  has_touch=True, device_scale_factor=2)
    try:
        page = context.new_page()
        for link, shown in ((f"/?task=sentiment&text={quote(REVIEW)}", ".sentences li"),
                            (f"/?task=pos-tag&text={quote(CHINESE)}", ".chip")):
            page.goto(link)
            sync_api.expect(page.locator(shown).first).to_be_visible(timeout=60_000)
            assert page.evaluate("document.documentElement.scrollWidth") <= 360  # nothing to scroll sideways
    finally:
        context.close()


def test_the_page_asks_for_the_api_key_when_the_service_needs_one(browser):
    with running_server({"SENPOS_API_KEY": "page-test-key"}) as url:
        assert httpx.post(f"{url}/sentiment", json={"texts": ["fine"]}).status_code == 401
        context = browser.new_context(base_url=url)
        try:
            page = context.new_page()
            sent = []
            page.on("request", lambda r: r.url.endswith("/sentiment") and sent.append(r.headers.get("authorization")))
            page.goto(f"/?task=sentiment&text={quote('A wonderful film.')}")  # the page itself needs no key
            sync_api.expect(page.get_by_role("alert")).to_contain_text("needs an API key")
            key = page.get_by_label("API key")
            sync_api.expect(key).to_be_focused()
            key.fill("wrong-key")
            key.press("Enter")
            sync_api.expect(page.get_by_role("alert")).to_contain_text("not accepted")
            key.fill("page-test-key")
            key.press("Enter")
            sync_api.expect(page.locator(".verdict .label")).to_have_text("Positive")
            assert sent == [None, "Bearer wrong-key", "Bearer page-test-key"]
            assert page.evaluate("sessionStorage.getItem('senpos-api-key')") == "page-test-key"
            assert re.search(r"\blocalStorage\b", (REPO / "service" / "static" / "page.js").read_text()) is None
        finally:
            context.close()
