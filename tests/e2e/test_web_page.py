"""The web page in headless Chromium against both services as real processes, a real broker and
the real local OpenID Connect provider (oidc/): a user signs in through it (code + PKCE), an
order placed on the page appears live in its price columns and at the top of their orders, they
see only their own items, a long group loads page by page, a refusal is shown in words, and a
view read again unchanged costs a 304 (the page sends the ETag it holds)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Locator,
    Page,
    Request,
    Response,
    Route,
    expect,
    sync_playwright,
)

from devtools.oidc import LocalProvider, sign_in
from kafka_local.broker import free_port
from tests.support import System, running_system

pytestmark = [pytest.mark.kafka, pytest.mark.browser]

REPO = Path(__file__).resolve().parents[2]
DOCS_SCREENSHOT = REPO / "docs" / "screenshot.png"
CHROMIUM = Path("/usr/bin/chromium")
# Debian's Chromium, not Playwright's download (which cannot work here); quiet and offline.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# An order placed on the page reaches every column well within this (the target is a second).
LIVE_UPDATE_MS = 5_000
ORDER = (
    ("PEN-01", "Ballpoint pen", "4.99", "3"),
    ("NOTE-A5", "A5 notebook", "3.50", "2"),
    ("MUG-CER", "Ceramic mug", "50.00", "1"),
    ("HDP-200", "Wired headphones", "24.99", "1"),
    ("LAMP-9", "Desk lamp", "50.01", "2"),
)


@pytest.fixture(scope="module")
def services(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """Both services, trusting the local provider, which is started once the page's URL (its
    redirect URI) is known; any valid user id may sign in."""
    workdir = tmp_path_factory.mktemp("web")
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    auth_env = {"AUTH_ISSUER": issuer, "AUTH_JWKS_URL": f"{issuer}/jwks"}
    with running_system(kafka_bootstrap, workdir, auth_env) as system:
        provider = LocalProvider(port, [system.query.url + "/"], workdir / "oidc-keys.json", ["*"])
        with (workdir / "oidc.log").open("wb") as log:
            provider.launch(log)
        try:
            provider.wait_ready()
            yield system
        finally:
            provider.stop()


def issuer_of(services: System) -> str:
    issuer: str = httpx.get(f"{services.query.url}/config.json", timeout=5).json()["auth"]["issuer"]
    return issuer


def bearer(services: System, user_id: str) -> dict[str, str]:
    """A token for `user_id` from the provider, signed in over HTTP as the page would."""
    token = sign_in(issuer_of(services), user_id, services.query.url + "/")
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser test drives Debian's Chromium. "
            "Run `make browser` to install it.",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class OpenPage:
    """A page, and whatever went wrong in it: script errors, console errors, foreign requests."""

    page: Page
    problems: list[str] = field(default_factory=list)


def open_page(browser: Browser, services: System, width: int, height: int) -> OpenPage:
    opened = OpenPage(browser.new_page(viewport={"width": width, "height": height}))
    own_hosts = {
        urlsplit(services.query.url).netloc,
        urlsplit(services.command.url).netloc,
        urlsplit(issuer_of(services)).netloc,
    }

    issuer_host = urlsplit(issuer_of(services)).netloc

    def on_provider_page() -> bool:
        # The provider's own login and consent pages (not ours) load web fonts from elsewhere.
        return urlsplit(opened.page.url).netloc == issuer_host

    def on_console(message: ConsoleMessage) -> None:
        # The browser itself logs every 4xx response; the 422 the test provokes is expected.
        if on_provider_page():
            return
        if message.type == "error" and "status of 422" not in message.text:
            opened.problems.append(f"console error: {message.text}")

    def on_request(request: Request) -> None:
        url = urlsplit(request.url)
        if urlsplit(request.frame.url).netloc == issuer_host or on_provider_page():
            return
        if url.scheme not in ("data", "blob") and url.netloc not in own_hosts:
            opened.problems.append(f"request to another host: {request.url}")

    opened.page.on("pageerror", lambda exc: opened.problems.append(f"page error: {exc}"))
    opened.page.on("console", on_console)
    opened.page.on("request", on_request)
    opened.page.goto(services.query.url + "/")
    return opened


def choose_user(page: Page, user_id: str) -> None:
    """Sign in through the provider's development login (any password) and its consent page."""
    page.get_by_role("button", name="Sign in").click()
    page.locator('input[name="login"]').fill(user_id)
    page.locator('input[name="password"]').fill("any password")
    page.get_by_role("button", name="Sign-in").click()
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_text(f"Signed in as {user_id}")).to_be_visible()
    expect(page.get_by_role("status").filter(has_text="Live")).to_be_visible()


def item_row(page: Page, number: int) -> Locator:
    return page.get_by_role("group", name=f"Item {number}", exact=True)


def fill_item(row: Locator, sku: str, name: str, unit_price: str, quantity: str) -> None:
    row.get_by_label("SKU").fill(sku)
    row.get_by_label("Name").fill(name)
    row.get_by_label("Unit price").fill(unit_price)
    row.get_by_label("Quantity").fill(quantity)


def column(page: Page, name: str) -> Locator:
    return page.get_by_role("region", name=name, exact=True)


def orders_of(page: Page) -> Locator:
    """The orders in the "Your orders" list, as shown: newest first."""
    return page.get_by_role("list", name="Your orders").locator(":scope > li")


def place(services: System, user_id: str, items: list[dict[str, object]]) -> str:
    """Place an order with the command service; its consistency token."""
    placed = httpx.post(
        f"{services.command.url}/orders",
        json={"items": items},
        headers=bearer(services, user_id),
        timeout=10,
    )
    assert placed.status_code == 201, placed.text
    token: str = placed.json()["consistency_token"]
    return token


def wait_for_view(services: System, user_id: str, token: str) -> None:
    """Until the query service's view holds the order that `token` stands for."""
    read = httpx.get(
        f"{services.query.url}/users/{user_id}/items",
        params={"consistency_token": token},
        headers=bearer(services, user_id),
        timeout=10,
    )
    assert read.status_code == 200, read.text


def expect_group(group: Locator, item_count: str, total: str, names: list[str]) -> None:
    expect(group.get_by_role("row")).to_have_count(len(names) + 1, timeout=LIVE_UPDATE_MS)
    for name in names:
        expect(group.get_by_role("row").filter(has_text=name)).to_be_visible()
    expect(group.locator('[data-field="item_count"]')).to_have_text(item_count)
    expect(group.locator('[data-field="total"]')).to_have_text(total)


def test_the_page_gets_the_command_service_url_and_its_issuer_from_the_query_service(
    services: System,
) -> None:
    config = httpx.get(f"{services.query.url}/config.json", timeout=5)
    assert config.status_code == 200, config.text
    assert config.json() == {
        "command_service_url": services.command.url,
        "auth": {
            "issuer": issuer_of(services),
            "client_id": "orders-page",
            "resource": "urn:orders",
            "scope": "openid orders:read orders:write",
        },
    }


def test_an_order_placed_on_the_page_appears_live_by_price_group(
    browser: Browser, services: System, tmp_path: Path
) -> None:
    opened = open_page(browser, services, 1280, 800)
    page = opened.page
    choose_user(page, "ada")
    page.evaluate("window.loadedOnce = true")  # gone if the page reloads

    unlabelled = page.locator("input").evaluate_all(
        "inputs => inputs.filter(i => i.labels.length === 0).map(i => i.outerHTML)"
    )
    assert unlabelled == []

    fill_item(item_row(page, 1), *ORDER[0])
    for number, item in enumerate(ORDER[1:], start=2):
        page.get_by_role("button", name="Add item").click()
        expect(item_row(page, number).get_by_label("SKU")).to_be_focused()
        fill_item(item_row(page, number), *item)
    page.get_by_role("button", name="Add item").click()
    page.get_by_role("button", name=f"Remove item {len(ORDER) + 1}").click()
    expect(item_row(page, len(ORDER) + 1)).to_have_count(0)

    placed_at = time.monotonic()
    page.get_by_role("button", name="Place order").click()

    expect_group(column(page, "Expensive"), "2", "£100.02", ["Desk lamp"])
    expect_group(column(page, "Affordable"), "2", "£74.99", ["Ceramic mug", "Wired headphones"])
    expect_group(column(page, "Cheap"), "5", "£21.97", ["Ballpoint pen", "A5 notebook"])
    seen_after = time.monotonic() - placed_at
    lamp = column(page, "Expensive").get_by_role("row").filter(has_text="Desk lamp")
    expect(lamp).to_contain_text("LAMP-9")
    expect(lamp).to_contain_text("£50.01")
    expect(lamp).to_contain_text("in 1 order")
    expect(column(page, "Cheap").locator('[data-field="line_count"]')).to_have_text("2")
    expect(orders_of(page).first).to_contain_text("Desk lamp")
    assert page.evaluate("window.loadedOnce") is True, "the page reloaded"
    expect(page.get_by_role("status").filter(has_text="Order placed")).to_be_visible()
    expect(item_row(page, 2)).to_have_count(0)

    page.screenshot(path=tmp_path / "screenshot.png", animations="disabled")
    if os.environ.get("UPDATE_SCREENSHOT") == "1":  # `make screenshot` refreshes the README's
        DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(tmp_path / "screenshot.png", DOCS_SCREENSHOT)

    fill_item(item_row(page, 1), "CLIP", "Paper clip", "1.234", "1")
    page.get_by_role("button", name="Place order").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Item 1: unit price must have at most 2 decimal places")
    expect(item_row(page, 1).get_by_label("Unit price")).to_have_attribute("aria-invalid", "true")
    expect(column(page, "Cheap").get_by_role("row")).to_have_count(3)
    page.screenshot(path=tmp_path / "refused.png", animations="disabled")

    # Signed in, the user is the token's: there is no user id to type.
    expect(page.get_by_label("User id")).to_be_hidden()
    page.reload()
    expect(page.get_by_text("Signed in as ada")).to_be_visible()
    expect_group(column(page, "Cheap"), "5", "£21.97", ["Ballpoint pen", "A5 notebook"])
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    expect(column(page, "Cheap")).to_contain_text("No items yet.")
    assert opened.problems == []

    # Someone else, in a browser of their own, sees only their own items: none of ada's.
    other = open_page(browser, services, 1280, 800)
    choose_user(other.page, "nobody")
    expect(column(other.page, "Cheap")).to_contain_text("No items yet.")
    expect(other.page.get_by_text("No orders yet.")).to_be_visible()
    expect(orders_of(other.page)).to_have_count(0)
    assert other.problems == []
    print(f"all three columns updated {seen_after:.2f}s after Place order")


def test_a_retry_after_a_503_sends_the_same_idempotency_key(
    browser: Browser, services: System
) -> None:
    opened = open_page(browser, services, 1280, 800)
    page = opened.page
    choose_user(page, "lin")
    keys: list[str] = []

    def first_unavailable(route: Route) -> None:
        keys.append(route.request.headers["idempotency-key"])
        if len(keys) == 1:
            route.fulfill(
                status=503,
                json={"detail": "the order could not be recorded right now"},
                headers={"Access-Control-Allow-Origin": services.query.url, "Retry-After": "1"},
            )
        else:
            route.continue_()

    page.route(f"{services.command.url}/orders", first_unavailable)
    fill_item(item_row(page, 1), "PEN-01", "Ballpoint pen", "4.99", "1")
    page.get_by_role("button", name="Place order").click()
    expect(page.get_by_role("alert")).to_contain_text("could not be recorded just now")
    page.get_by_role("button", name="Place order").click()
    expect(
        column(page, "Cheap").get_by_role("row").filter(has_text="Ballpoint pen")
    ).to_be_visible()
    expect(page.get_by_role("alert")).to_be_hidden()

    fill_item(item_row(page, 1), "PEN-01", "Ballpoint pen", "4.99", "1")
    page.get_by_role("button", name="Place order").click()
    expect(column(page, "Cheap").locator('[data-field="item_count"]')).to_have_text("2")
    assert len(keys) == 3
    assert keys[0] == keys[1] != keys[2]
    assert [problem for problem in opened.problems if "status of 503" not in problem] == []


def test_at_phone_width_the_columns_stack_without_horizontal_scroll(
    browser: Browser, services: System, tmp_path: Path
) -> None:
    order = {
        "items": [
            {"sku": "PEN-01", "name": "Ballpoint pen", "unit_price": "4.99", "quantity": 3},
            {"sku": "MUG-CER", "name": "Ceramic mug", "unit_price": "50.00", "quantity": 1},
            {"sku": "LAMP-9", "name": "Desk lamp", "unit_price": "50.01", "quantity": 2},
        ],
    }
    placed = httpx.post(
        f"{services.command.url}/orders", json=order, headers=bearer(services, "grace"), timeout=10
    )
    assert placed.status_code == 201, placed.text
    opened = open_page(browser, services, 390, 844)
    page = opened.page
    choose_user(page, "grace")
    expect(
        column(page, "Expensive").get_by_role("row").filter(has_text="Desk lamp")
    ).to_be_visible()

    boxes = [column(page, name).bounding_box() for name in ("Cheap", "Affordable", "Expensive")]
    assert all(box is not None for box in boxes)
    cheap, affordable, expensive = (box for box in boxes if box is not None)
    assert cheap["x"] == affordable["x"] == expensive["x"]
    assert cheap["y"] + cheap["height"] <= affordable["y"]
    assert affordable["y"] + affordable["height"] <= expensive["y"]
    widths = page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1], f"horizontal scroll at 390px: {widths}"
    page.screenshot(path=tmp_path / "phone.png", full_page=True, animations="disabled")
    assert opened.problems == []


def orders_read(user_id: str, status: int) -> Callable[[Response], bool]:
    """Whether a response is the page's read of `user_id`'s first page of orders, with `status`."""
    return lambda response: (
        urlsplit(response.url).path == f"/users/{user_id}/orders"
        and urlsplit(response.url).query == ""
        and response.status == status
    )


def test_while_the_query_service_is_away_the_page_says_so_then_revalidates_what_it_shows(
    browser: Browser, services: System
) -> None:
    """Back after a gap in its stream, the page reads its orders again with the ETag it holds:
    nothing changed, so a 304, and it shows what it showed. An order placed elsewhere then shows
    in the columns (the stream) and the orders (read again: a new ETag)."""
    ink = {"sku": "INK-BLK", "name": "Black ink", "unit_price": "2.50", "quantity": 2}
    wait_for_view(services, "rey", place(services, "rey", [ink]))
    opened = open_page(browser, services, 1280, 800)
    page = opened.page
    with page.expect_response(orders_read("rey", 200)) as first_read:
        choose_user(page, "rey")
    etag = first_read.value.headers["etag"]
    assert first_read.value.headers["cache-control"] == "private, no-cache"
    expect(orders_of(page)).to_have_count(1)
    cheap = column(page, "Cheap")
    expect(cheap.get_by_role("row").filter(has_text="Black ink")).to_be_visible()

    services.query.stop()
    expect(page.get_by_role("status").filter(has_text="Reconnecting")).to_be_visible()
    with page.expect_response(orders_read("rey", 304), timeout=30_000) as revalidated:
        services.query.start("/health/ready")
        expect(page.get_by_role("status").filter(has_text="Live")).to_be_visible(timeout=15_000)
    assert revalidated.value.request.headers.get("if-none-match") == etag
    assert revalidated.value.headers["etag"] == etag
    expect(orders_of(page)).to_have_count(1)
    expect(orders_of(page).first).to_contain_text("Black ink (INK-BLK) at £2.50")
    expect(cheap.get_by_role("row").filter(has_text="Black ink")).to_be_visible()
    expect(cheap.locator('[data-field="item_count"]')).to_have_text("2")

    # Placed elsewhere (not on this page): the stream's delta, and the orders read again.
    with page.expect_response(orders_read("rey", 200), timeout=30_000) as changed:
        place(services, "rey", [{**ink, "sku": "INK-RED", "name": "Red ink", "quantity": 1}])
        expect(cheap.get_by_role("row").filter(has_text="Red ink")).to_be_visible(
            timeout=LIVE_UPDATE_MS
        )
    assert changed.value.request.headers.get("if-none-match") == etag
    assert changed.value.headers["etag"] != etag
    expect(orders_of(page)).to_have_count(2)
    expect(orders_of(page).first).to_contain_text("Red ink")

    fill_item(item_row(page, 1), "CLIP", "Paper clip", "0.05", "10")
    page.get_by_role("button", name="Place order").click()
    expect(cheap.get_by_role("row").filter(has_text="Paper clip")).to_be_visible()
    expect(orders_of(page).first).to_contain_text("Paper clip")
    # The browser logs the stream cut off and the refused reconnections; the page itself, nothing.
    assert [p for p in opened.problems if "Failed to load resource: net::" not in p] == []


def test_a_long_group_shows_fifty_lines_and_show_more_loads_the_rest(
    browser: Browser, services: System
) -> None:
    bulk = [
        {"sku": f"BULK-{n:02d}", "name": f"Bulk item {n:02d}", "unit_price": "1.00", "quantity": 1}
        for n in range(60)
    ]
    # In the view before the page opens, so that its first snapshot holds more than a page.
    wait_for_view(services, "bulk", place(services, "bulk", bulk))
    opened = open_page(browser, services, 1280, 800)
    page = opened.page
    choose_user(page, "bulk")
    cheap = column(page, "Cheap")
    rows = cheap.get_by_role("row")
    expect(rows).to_have_count(51, timeout=LIVE_UPDATE_MS)  # the header and the first page
    expect(cheap.locator('[data-field="line_count"]')).to_have_text("60")
    expect(cheap).to_contain_text("Showing 50 of 60 lines")
    expect(rows.last).to_contain_text("BULK-49")
    show_more = cheap.get_by_role("button", name="Show more")
    expect(show_more).to_be_visible()

    # Live changes while only the first page is loaded: a loaded line is updated, a new line
    # among the loaded ones is inserted in order, a new line past them waits for "Show more".
    place(
        services,
        "bulk",
        [
            {"sku": "BULK-05", "name": "Bulk item 05", "unit_price": "1.00", "quantity": 2},
            {"sku": "BULK-10", "name": "Dearer bulk item 10", "unit_price": "2.00", "quantity": 1},
            {"sku": "BULK-99", "name": "Bulk item 99", "unit_price": "1.00", "quantity": 1},
        ],
    )
    expect(cheap.locator('[data-field="line_count"]')).to_have_text("62", timeout=LIVE_UPDATE_MS)
    expect(cheap.locator('[data-field="item_count"]')).to_have_text("64")
    expect(cheap.locator('[data-field="total"]')).to_have_text("£65.00")
    expect(rows).to_have_count(52)
    updated = rows.filter(has_text="BULK-05")
    expect(updated).to_contain_text("in 2 orders")
    expect(updated.locator('[data-field="quantity"]')).to_have_text("3")
    expect(rows.nth(12)).to_contain_text("Dearer bulk item 10")  # after BULK-10 at £1.00
    expect(rows.filter(has_text="BULK-99")).to_have_count(0)

    show_more.click()
    expect(rows).to_have_count(63)
    expect(show_more).to_be_hidden()
    expect(cheap.get_by_text("Showing")).to_be_hidden()
    skus = cheap.locator("tbody tr").evaluate_all("rows => rows.map(r => r.dataset.sku)")
    expected = [f"BULK-{n:02d}" for n in range(60)] + ["BULK-99"]
    expected.insert(expected.index("BULK-10") + 1, "BULK-10")
    assert skus == expected
    expect(rows.last).to_contain_text("BULK-99")
    assert opened.problems == []


def test_the_orders_list_shows_the_newest_order_first(browser: Browser, services: System) -> None:
    for n in range(21):
        place(
            services,
            "olga",
            [
                {
                    "sku": f"OLD-{n:02d}",
                    "name": f"Old thing {n:02d}",
                    "unit_price": "7.50",
                    "quantity": 1,
                }
            ],
        )
    opened = open_page(browser, services, 1280, 800)
    page = opened.page
    choose_user(page, "olga")
    orders = orders_of(page)
    expect(orders).to_have_count(20)
    expect(orders.first).to_contain_text("Old thing 20")
    expect(orders.last).to_contain_text("Old thing 01")
    more = page.get_by_role("button", name="Show more orders")
    expect(more).to_be_visible()

    fill_item(item_row(page, 1), "TEA", "Green tea", "4.99", "3")
    page.get_by_role("button", name="Place order").click()
    expect(orders.first).to_contain_text("Green tea")
    expect(orders.first).to_contain_text("3 items, £14.97")
    expect(orders.nth(1)).to_contain_text("Old thing 20")
    expect(orders).to_have_count(20)

    more.click()
    expect(orders).to_have_count(22)
    expect(orders.last).to_contain_text("Old thing 00")
    expect(more).to_be_hidden()
    assert opened.problems == []
