"""The web client (morelia_trio/web) in a real browser: headless Chromium driven by Selenium.

The page is opened from its file in the package with ``?ws=`` naming the test's server, as
until the server serves it itself. Selenium is synchronous: each scenario runs in a thread
while the server runs in the test's nursery. Without Chromium and its driver these tests
are skipped, saying so, unless ``REQUIRED_TEST_TOOLS`` names them (CI does).
"""

from __future__ import annotations

import functools
import http.server
import itertools
import json
import os
import threading
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio
from selenium.common.exceptions import (
    NoAlertPresentException,
    StaleElementReferenceException,
)
from selenium.webdriver import Chrome
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from morelia_trio import Running
from morelia_trio.config import Config, Limits
from morelia_trio.server import serve
from tests.wire import open_client

from .test_packaging import tool

PAGE = Path(str(resources.files("morelia_trio") / "web" / "index.html"))
REPLY_CAP = 5  # small, so a flow of a few dozen messages takes many pages
WAIT = 20  # seconds for the page to show something: polling adds up to 2 s
_profiles = itertools.count()


@pytest.fixture
def morelia_config(morelia_config: Config) -> Config:
    return msgspec.structs.replace(morelia_config, limits=Limits(reply_cap=REPLY_CAP))


@pytest.fixture
def browser_paths() -> tuple[str, str]:
    chromium = tool("chromium", "the web client's tests need Debian's chromium")
    driver = tool("chromedriver", "the web client's tests need Debian's chromium-driver")
    return chromium, driver


Browse = Callable[..., Any]


@pytest.fixture
def open_browser(browser_paths: tuple[str, str], tmp_path: Path) -> Iterator[Browse]:
    """Start a headless Chromium (call it from a worker thread); all are quit at the end."""
    chromium, driver_path = browser_paths
    started: list[WebDriver] = []

    def start(phone: bool = False) -> WebDriver:
        options = Options()
        options.binary_location = chromium
        for argument in (
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--window-size=1000,720",
            f"--user-data-dir={tmp_path / f'profile-{next(_profiles)}'}",
        ):
            options.add_argument(argument)
        # The driver is named, so Selenium never looks for (or downloads) one of its own.
        driver = Chrome(service=Service(driver_path), options=options)
        started.append(driver)
        if phone:
            driver.execute_cdp_cmd(
                "Emulation.setDeviceMetricsOverride",
                {"width": 375, "height": 667, "deviceScaleFactor": 2, "mobile": True},
            )
        return driver

    yield start
    for driver in started:
        driver.quit()


def page_url(server: Running) -> str:
    """The page as the server serves it: it connects to /ws of its own origin."""
    return server.http_url


def wait(driver: WebDriver, condition: Callable[[WebDriver], Any], timeout: float = WAIT) -> Any:
    # The page redraws a message when it changes: an element may go stale between looks.
    waiting = WebDriverWait(
        driver, timeout, poll_frequency=0.1, ignored_exceptions=[StaleElementReferenceException]
    )
    return waiting.until(condition)


def visible(driver: WebDriver, element_id: str) -> bool:
    return bool(driver.find_element(By.ID, element_id).is_displayed())


def shown_texts(driver: WebDriver) -> list[str]:
    """The messages' texts as shown, read in one go (the page may redraw meanwhile)."""
    texts: list[str] = driver.execute_script(
        "return [...document.querySelectorAll('#messages li .text')].map(e => e.textContent)"
    )
    return texts


def message_item(driver: WebDriver, text: str) -> WebElement:
    for item in driver.find_elements(By.CSS_SELECTOR, "#messages li"):
        if item.find_element(By.CSS_SELECTOR, ".text").text == text:
            return item
    raise AssertionError(f"no message {text!r} on the page")


def more_than(count: int) -> Callable[[WebDriver], bool]:
    return lambda d: len(shown_texts(d)) > count


def error_text(driver: WebDriver) -> str:
    return str(wait(driver, lambda d: d.find_element(By.ID, "error").text))


def fill(driver: WebDriver, element_id: str, text: str) -> None:
    field = driver.find_element(By.ID, element_id)
    field.clear()
    field.send_keys(text)


def register(driver: WebDriver, login: str, password: str, username: str = "") -> None:
    wait(driver, lambda d: visible(d, "auth"))
    fill(driver, "login", login)
    fill(driver, "password", password)
    fill(driver, "username", username)
    driver.find_element(By.ID, "do-register").click()
    wait(driver, lambda d: visible(d, "app"))


def log_in(driver: WebDriver, login: str, password: str) -> None:
    wait(driver, lambda d: visible(d, "auth"))
    fill(driver, "login", login)
    fill(driver, "password", password)
    driver.find_element(By.ID, "password").send_keys(Keys.ENTER)


def open_flow(driver: WebDriver, title: str) -> None:
    def clicked(d: WebDriver) -> bool:
        try:
            for button in d.find_elements(By.CSS_SELECTOR, "#flows button"):
                if title in button.text:
                    button.click()
                    return True
        except StaleElementReferenceException:  # the list was drawn again meanwhile
            pass
        return False

    wait(driver, clicked)
    wait(driver, lambda d: title in d.find_element(By.ID, "flow-title-heading").text)


def type_and_send(driver: WebDriver, text: str) -> None:
    """Type into the message box and press Enter, as a keyboard user does."""
    box = driver.find_element(By.ID, "text")
    box.send_keys(text)
    box.send_keys(Keys.ENTER)
    wait(driver, lambda d: text in shown_texts(d))


def accept_alert(driver: WebDriver) -> None:
    def accepted(d: WebDriver) -> bool:
        try:
            d.switch_to.alert.accept()
        except NoAlertPresentException:
            return False
        return True

    wait(driver, accepted)


async def in_thread(scenario: Callable[[], None]) -> None:
    with trio.fail_after(180):
        await trio.to_thread.run_sync(scenario)


async def test_two_people_chat_live_with_edits_and_deletions(
    morelia_server: Running, open_browser: Browse, tmp_path: Path
) -> None:
    attack = "<img src=x onerror=alert(1)>"

    session_key = json.dumps(f"morelia.session {morelia_server.url}")

    def scenario() -> None:
        ann, bob = open_browser(), open_browser()
        for driver in (ann, bob):
            driver.get(page_url(morelia_server))
        register(ann, "ann", "ann-password", "Ann")
        register(bob, "bob", "bob-password", "Bob")
        for driver in (ann, bob):
            open_flow(driver, "General")

        type_and_send(ann, "Hello Bob")
        wait(bob, lambda d: "Hello Bob" in shown_texts(d))
        greeting = message_item(bob, "Hello Bob")
        assert greeting.find_element(By.CSS_SELECTOR, ".author").text == "Ann"
        assert greeting.find_element(By.CSS_SELECTOR, "time").get_attribute("datetime")
        # Only one's own messages have edit and delete buttons.
        assert greeting.find_elements(By.TAG_NAME, "button") == []
        assert len(message_item(ann, "Hello Bob").find_elements(By.TAG_NAME, "button")) == 2

        # Markup in a message is text: shown as typed, never run, never an element.
        type_and_send(bob, attack)
        wait(ann, lambda d: attack in shown_texts(d))
        assert ann.find_elements(By.CSS_SELECTOR, "#messages img") == []
        with pytest.raises(NoAlertPresentException):
            ann.switch_to.alert.accept()

        # An edit and a deletion by Ann reach Bob by themselves.
        item = message_item(ann, "Hello Bob")
        item.find_element(By.XPATH, ".//button[text()='Edit']").click()
        editor = ann.switch_to.active_element
        editor.clear()
        editor.send_keys("Hello again, Bob", Keys.ENTER)
        wait(ann, lambda d: "Hello again, Bob" in shown_texts(d))
        wait(bob, lambda d: "Hello again, Bob" in shown_texts(d))
        assert "Hello Bob" not in shown_texts(bob)
        assert "edited" in message_item(bob, "Hello again, Bob").text

        type_and_send(ann, "a mistake")
        wait(bob, lambda d: "a mistake" in shown_texts(d))
        message_item(ann, "a mistake").find_element(By.XPATH, ".//button[text()='Delete']").click()
        accept_alert(ann)
        wait(ann, lambda d: "a mistake" not in shown_texts(d))
        wait(bob, lambda d: "a mistake" not in shown_texts(d))

        # A private chat, made by Bob with Ann's user id, reaches Ann too.
        ann_id = ann.execute_script(f"return JSON.parse(localStorage[{session_key}]).id")
        bob.find_element(By.CSS_SELECTOR, "#new-flow summary").click()
        bob.find_element(By.ID, "flow-type").send_keys("Private")
        fill(bob, "flow-peer", str(ann_id))
        fill(bob, "flow-title", "Ann and Bob")
        bob.find_element(By.ID, "create-flow").click()
        wait(bob, lambda d: "Ann and Bob" in d.find_element(By.ID, "flow-title-heading").text)
        type_and_send(bob, "just us")
        open_flow(ann, "Ann and Bob")
        wait(ann, lambda d: "just us" in shown_texts(d))

        open_flow(ann, "General")
        open_flow(bob, "General")
        type_and_send(ann, "See you in the browser!")
        wait(bob, lambda d: "See you in the browser!" in shown_texts(d))
        screenshot = os.environ.get("MORELIA_SCREENSHOT")
        if screenshot:
            ann.save_screenshot(screenshot)

    await in_thread(scenario)


async def test_older_messages_load_when_scrolling_up(
    morelia_server: Running, open_browser: Browse
) -> None:
    async with open_client(morelia_server.url) as writer:
        await writer.register("writer", "writer-password")
        general = (await writer.flows())[0]["uuid"]
        for number in range(60):
            await writer.send(general, f"message {number}")

    def scenario() -> None:
        reader = open_browser()
        reader.get(page_url(morelia_server))
        register(reader, "reader", "reader-password")
        open_flow(reader, "General")
        wait(reader, lambda d: "message 59" in shown_texts(d))
        first_screen = shown_texts(reader)
        # Newest at the bottom, a screenful of them: not the whole flow.
        assert first_screen[-1] == "message 59"
        assert "message 0" not in first_screen
        # Each scroll to the top loads older messages, until the first.
        for _ in range(40):
            shown = len(shown_texts(reader))
            if "message 0" in shown_texts(reader):
                break
            reader.execute_script("document.getElementById('scroller').scrollTop = 0")
            wait(reader, more_than(shown))
        assert shown_texts(reader) == [f"message {n}" for n in range(60)]
        wait(reader, lambda d: visible(d, "history-start"))

    await in_thread(scenario)


async def test_errors_are_shown_in_words(morelia_server: Running, open_browser: Browse) -> None:
    async with open_client(morelia_server.url) as somebody:
        await somebody.register("cleo", "cleo-password")

    def scenario() -> None:
        driver = open_browser()
        driver.get(page_url(morelia_server))
        log_in(driver, "cleo", "not her password")
        wait(driver, lambda d: "Wrong password" in d.find_element(By.ID, "error").text)
        log_in(driver, "nobody", "some password")
        wait(driver, lambda d: "No account has this login" in d.find_element(By.ID, "error").text)
        fill(driver, "login", "cleo")
        fill(driver, "password", "another password")
        driver.find_element(By.ID, "do-register").click()
        wait(driver, lambda d: "login is taken" in d.find_element(By.ID, "error").text)
        fill(driver, "login", " padded")
        driver.find_element(By.ID, "do-register").click()
        wait(driver, lambda d: "refused a field" in d.find_element(By.ID, "error").text)
        assert "login" in error_text(driver)
        assert visible(driver, "auth")

    await in_thread(scenario)


async def test_a_phone_sized_page_switches_panes_and_a_reload_keeps_the_login(
    morelia_server: Running, open_browser: Browse
) -> None:
    session_key = json.dumps(f"morelia.session {morelia_server.url}")

    def scenario() -> None:
        phone = open_browser(phone=True)
        phone.get(page_url(morelia_server))
        register(phone, "dana", "dana-password", "Dana")
        assert phone.execute_script("return window.innerWidth") == 375
        wait(phone, lambda d: visible(d, "flows-pane"))
        assert not visible(phone, "chat-pane")
        open_flow(phone, "General")
        assert not visible(phone, "flows-pane")
        type_and_send(phone, "from my phone")
        # Nothing sticks out sideways on a narrow screen.
        assert phone.execute_script(
            "return document.documentElement.scrollWidth <= window.innerWidth"
        )
        phone.find_element(By.ID, "back").click()
        wait(phone, lambda d: visible(d, "flows-pane"))

        phone.refresh()
        wait(phone, lambda d: visible(d, "app"))
        assert not visible(phone, "auth")
        open_flow(phone, "General")
        wait(phone, lambda d: "from my phone" in shown_texts(d))

        # A token the server no longer knows logs the page out, saying so.
        phone.execute_script(
            f"localStorage.setItem({session_key}, JSON.stringify({{id: 1, token: 'stale'}}))"
        )
        phone.refresh()
        wait(phone, lambda d: visible(d, "auth"))
        assert "log in again" in error_text(phone)
        assert phone.execute_script(f"return localStorage.getItem({session_key})") is None

    await in_thread(scenario)


async def test_the_page_reconnects_by_itself_and_catches_up(
    morelia_config: Config, open_browser: Browse
) -> None:
    async with trio.open_nursery() as first:
        running: Running = await first.start(serve, morelia_config)
        url = page_url(running)
        driver: WebDriver | None = None

        def log_in_and_send() -> None:
            nonlocal driver
            driver = open_browser()
            driver.get(url)
            register(driver, "eve", "eve-password", "Eve")
            open_flow(driver, "General")
            type_and_send(driver, "before the restart")

        await in_thread(log_in_and_send)
        first.cancel_scope.cancel()
    assert driver is not None
    page = driver

    def disconnected() -> None:
        wait(page, lambda d: "reconnecting" in d.find_element(By.ID, "status").text)

    await in_thread(disconnected)
    same_port = msgspec.structs.replace(morelia_config, port=running.port)
    async with trio.open_nursery() as second:
        again: Running = await second.start(serve, same_port)
        async with open_client(again.url) as other:
            await other.register("fred", "fred-password")
            general = (await other.flows())[0]["uuid"]
            await other.send(general, "while you were away")

        def caught_up() -> None:
            wait(page, lambda d: "while you were away" in shown_texts(d))
            assert shown_texts(page) == ["before the restart", "while you were away"]
            assert "Connected" in page.find_element(By.ID, "status").text
            type_and_send(page, "back again")  # the saved token still works

        await in_thread(caught_up)
        second.cancel_scope.cancel()


async def test_pushed_update_frames_show_new_edited_and_deleted_messages(
    morelia_server: Running, open_browser: Browse
) -> None:
    """The frames of CONTRACT 8.2, handed to the page as if its connection received them."""

    def message(text: str, edited: bool = False) -> dict[str, Any]:
        return {
            "id": 9001,
            "text": text,
            "time": 1_700_000_000.5,
            "from_user": {"id": 77, "username": "Zoe"},
            "from_flow": {"id": 1, "type": "group"},
            "edited_message": {"time": 1_700_000_100.5, "status": True} if edited else None,
        }

    def push(driver: WebDriver, frame: dict[str, Any]) -> None:
        driver.execute_script("conn.received(arguments[0])", json.dumps(frame))

    def update(*messages: dict[str, Any]) -> dict[str, Any]:
        return {"type": "update", "data": {"time": 1_700_000_200.0, "message": list(messages)}}

    def scenario() -> None:
        driver = open_browser()
        driver.get(page_url(morelia_server))
        register(driver, "hal", "hal-password")
        open_flow(driver, "General")
        type_and_send(driver, "mine")
        wait(driver, lambda d: d.execute_script("return historyOf(1).complete"))
        push(driver, update(message("pushed")))
        wait(driver, lambda d: shown_texts(d) == ["pushed", "mine"])
        assert message_item(driver, "pushed").find_element(By.CSS_SELECTOR, ".author").text == (
            "Zoe"
        )
        push(driver, update(message("pushed, then edited", edited=True)))
        wait(driver, lambda d: shown_texts(d) == ["pushed, then edited", "mine"])
        push(driver, update({"id": 9001, "from_flow": {"id": 1}, "deleted": True}))
        wait(driver, lambda d: shown_texts(d) == ["mine"])
        # A resync makes the page ask get_update from that time: it still answers.
        push(driver, {"type": "resync", "data": {"time": 1.0}})
        type_and_send(driver, "still here")

    await in_thread(scenario)


class _QuietFiles(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # a test's output is no place for an access log


@pytest.fixture
def web_server() -> Iterator[str]:
    """The page's directory over HTTP, as a web server would serve it: its base URL."""
    handler = functools.partial(_QuietFiles, directory=str(PAGE.parent))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as httpd:
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
        httpd.shutdown()


async def test_a_served_page_takes_ws_only_for_its_own_host(
    morelia_server: Running, open_browser: Browse, web_server: str
) -> None:
    def scenario() -> None:
        driver = open_browser()
        own = f"ws://127.0.0.1:{web_server.rsplit(':', 1)[1]}/ws"
        driver.get(f"{web_server}/index.html")
        assert driver.execute_script("return SERVER") == own
        # Another host: a link must not send what people type there.
        foreign = morelia_server.url.replace("127.0.0.1", "localhost")
        driver.get(f"{web_server}/index.html?ws={foreign}")
        assert driver.execute_script("return SERVER") == own
        # The same host, another port: the server beside the web server.
        driver.get(f"{web_server}/index.html?ws={morelia_server.url}")
        assert driver.execute_script("return SERVER") == morelia_server.url
        register(driver, "gil", "gil-password")

    await in_thread(scenario)


def test_the_page_and_its_assets_ship_in_the_package() -> None:
    web = resources.files("morelia_trio") / "web"
    page = (web / "index.html").read_text()
    assert 'src="app.js"' in page and 'href="style.css"' in page
    assert "http" not in page.replace("http-equiv", "")  # nothing from elsewhere
    script = (web / "app.js").read_text()
    assert "innerHTML" not in script and "insertAdjacentHTML" not in script
