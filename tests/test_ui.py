"""The web page, driven by Playwright in Debian's headless Chromium against a real `evo serve` with SmolLM2."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import EVO
from .test_serve import Server, _env, start_server, stop

SHOTS = Path(os.environ.get("EVO_SCREENSHOTS", Path(__file__).resolve().parent.parent / "build" / "screenshots"))


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory):
    """`evo serve` as a user starts it: loopback, no API key (the page opens the write endpoints with its own token)."""
    home = tmp_path_factory.mktemp("ui-home")
    # Answers of 96 tokens: long enough to stream in visibly and to be stopped midway, short enough for the budget.
    srv = start_server(home, key=None, extra={"EVO_GENERATION__MAX_TOKENS": "96"})
    yield srv
    stop(srv)


@pytest.fixture
def page(browser, ui_server):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    pg.errors = []
    pg.on("console", lambda m: pg.errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    pg.goto(ui_server.url + "/")
    pg.wait_for_selector("#expert option", state="attached")
    yield pg
    assert pg.errors == [], pg.errors
    context.close()


def send(page, text: str) -> None:
    page.fill("#input", text)
    page.keyboard.press("Enter")


def last_answer(page):
    return page.locator("#messages .msg.assistant").last


def wait_turn_end(page, timeout: float = 120_000) -> None:
    page.wait_for_function("() => { const a = [...document.querySelectorAll('#messages .msg.assistant')].pop();"
                           " return a && !a.classList.contains('streaming'); }", timeout=timeout)


def db(server: Server) -> sqlite3.Connection:
    conn = sqlite3.connect(server.home / "conversations.db")
    conn.row_factory = sqlite3.Row
    return conn


def test_an_answer_streams_in_and_shows_its_expert(page):
    page.evaluate("""() => { window.__changes = 0; new MutationObserver(() => {
        const a = [...document.querySelectorAll('#messages .msg.assistant.streaming')].pop(); if (a) window.__changes++; })
        .observe(document.querySelector('#messages'), {subtree: true, childList: true, characterData: true}); }""")
    send(page, "Tell me about the sea in three sentences.")
    wait_turn_end(page)
    assert page.evaluate("window.__changes") >= 2  # the text grew while the answer streamed
    assert last_answer(page).locator(".badge").inner_text().strip()


def test_stop_keeps_the_partial_answer_marked_and_the_next_message_works(page):
    page.select_option("#expert", "evo-tr/base")
    send(page, "Write a very long story about a ship and the sea.")
    page.wait_for_function("() => ([...document.querySelectorAll('#messages .msg.assistant')].pop()?.innerText || '').length > 20")
    page.click("#stop")
    wait_turn_end(page)
    answer = last_answer(page)
    assert answer.locator(".interrupted").count() >= 1 and answer.locator(".body").inner_text().strip()
    send(page, "Hello!")
    wait_turn_end(page)
    assert page.locator("#messages .msg.assistant").count() == 2 and last_answer(page).locator(".badge").count() == 1


def test_regenerate_replaces_the_answer_and_feedback_lands_in_sqlite(page, ui_server):
    page.select_option("#expert", "evo-tr/base")
    send(page, "Name a fruit.")
    wait_turn_end(page)
    page.click("#messages .msg.assistant >> text=" + ("Yeniden üret"))
    wait_turn_end(page)
    assert page.locator("#messages .msg.assistant").count() == 1 and page.locator("#messages .msg.user").count() == 1
    last_answer(page).locator("button[aria-label='İyi cevap']").click()
    page.wait_for_selector("text=Teşekkürler, kaydedildi.")
    session = page.evaluate("state.session")
    with db(ui_server) as conn:
        kinds = [r["kind"] for r in conn.execute("SELECT kind FROM feedback WHERE session_id = ? ORDER BY id", (session,))]
    assert kinds == ["regenerate", "good"]  # the replaced answer marked as /regen marks it, then 👍 on the new one
    send(page, "Name a colour.")
    wait_turn_end(page)
    answer = last_answer(page)
    answer.locator("button[aria-label='Kötü cevap']").click()  # 👎 asks for an optional reason in a small form
    answer.locator(".feedback-form input").fill("Çok kısa.")
    answer.locator(".feedback-form input").press("Enter")
    answer.locator("text=Teşekkürler, kaydedildi.").wait_for()
    answer.locator("button[aria-label='Düzelt']").click()  # ✏️: the right answer; an empty one is not sent
    answer.locator(".feedback-form button[type=submit]").click()
    assert answer.locator(".feedback-form").count() == 1
    answer.locator(".feedback-form textarea").fill("Kırmızı.")
    answer.locator(".feedback-form button[type=submit]").click()
    answer.locator(".feedback-form").wait_for(state="detached")
    with db(ui_server) as conn:
        rows = [(r["kind"], r["reason"], r["text"]) for r in conn.execute("SELECT kind, reason, text FROM feedback WHERE session_id = ? "
                                                                          "AND kind IN ('bad', 'fix') ORDER BY id", (session,))]
    assert rows == [("bad", "Çok kısa.", ""), ("fix", "", "Kırmızı.")]


def test_the_expert_picker_is_honoured_and_a_session_survives_a_reload(page):
    page.select_option("#expert", "evo-tr/base")
    send(page, "Türkçe karakterler: ğüşıöçİ")
    wait_turn_end(page)
    assert last_answer(page).locator(".badge").inner_text().startswith("base")
    assert page.locator("#messages .msg.user").last.inner_text() == "Türkçe karakterler: ğüşıöçİ"
    page.wait_for_selector("#sessions li >> text=Türkçe karakterler")
    page.reload()
    page.wait_for_selector("#sessions li >> text=Türkçe karakterler: ğüşıöçİ")


def test_forgetting_a_memory_removes_it_from_the_list_and_from_recall(page, ui_server):
    import httpx

    send(page, "Benim adım Zeynep.")
    wait_turn_end(page)
    page.click("[data-page=memory]")
    page.select_option("#mem-type", "fact")  # the exchange that said it is a conversation memory, never recalled for this
    page.wait_for_function("() => { const tags = [...document.querySelectorAll('#page-memory .items .tag')].map(t => t.textContent);"
                           " return tags.length > 0 && tags.every(t => t === 'fact')"
                           " && document.querySelector('#page-memory .items').innerText.includes('Zeynep'); }")  # the filtered list
    page.once("dialog", lambda d: d.accept())
    page.locator("#page-memory li", has_text="Zeynep").first.locator("button").click()
    page.wait_for_function("() => !document.querySelector('#page-memory .items').innerText.includes('Zeynep')")
    auth: dict[str, str] = {}  # loopback without a key: reading needs none
    facts = httpx.get(f"{ui_server.url}/v1/evo/memories", params={"type": "fact"}, headers=auth).json()["memories"]
    assert not any("Zeynep" in m["text"] for m in facts)
    r = httpx.post(f"{ui_server.url}/v1/chat/completions", headers=auth, timeout=120,
                   json={"model": "evo-tr", "messages": [{"role": "user", "content": "Benim adım ne?"}], "max_tokens": 8}).json()
    recalled = [httpx.get(f"{ui_server.url}/v1/evo/memories", params={"limit": 1000}, headers=auth).json()["memories"]]
    texts = {m["id"]: m["text"] for m in recalled[0]}
    assert not any("Zeynep" in texts.get(i, "") for i in r["evo"]["memory_ids"])


def test_a_dropped_document_grounds_an_answer_and_its_source_opens_the_passage(page):
    text = "# Kuzey Ormanı\n\nKuzey Ormanı'ndaki gölün adı Karagöl'dür; göl 1.240 metre yüksekliktedir ve çevresi ladin ağaçlarıyla kaplıdır.\n"
    page.click("[data-page=knowledge]")
    page.wait_for_selector("#page-knowledge .drop")
    files = page.evaluate_handle("""([name, text]) => { const dt = new DataTransfer();
        dt.items.add(new File([text], name, {type: 'text/markdown'})); return dt; }""", ["kuzey-ormani.md", text])
    page.dispatch_event("#page-knowledge .drop", "drop", {"dataTransfer": files})  # as a file dropped from the desktop
    page.wait_for_selector("#page-knowledge .items li >> text=kuzey-ormani.md")
    page.fill("#page-knowledge input[type=search]", "Karagöl")
    page.press("#page-knowledge input[type=search]", "Enter")
    page.wait_for_selector("#page-knowledge details summary >> text=kuzey-ormani.md")
    page.click("[data-page=chat]")
    page.select_option("#expert", "evo-tr/base")
    send(page, "Kuzey Ormanı'ndaki gölün adı ne?")
    wait_turn_end(page)
    source = last_answer(page).locator(".sources .source").first
    assert "kuzey-ormani.md" in source.inner_text()
    source.click()
    passage = last_answer(page).locator(".passage")
    passage.wait_for(state="visible")
    assert "Karagöl" in passage.inner_text() and source.get_attribute("aria-expanded") == "true"
    page.click("[data-page=knowledge]")  # removed again: the rest of the module's server sees no document
    page.locator("#page-knowledge .items li", has_text="kuzey-ormani.md").locator("button").click()
    page.wait_for_selector("#page-knowledge .items li >> text=kuzey-ormani.md", state="detached")


def test_a_night_report_opens_with_its_charts(page, ui_server):
    today = time.strftime("%Y-%m-%d")
    env = _env(ui_server.home, None, {"EVO_NIGHT__LLM_EXTRACTION": "false"})
    night = subprocess.run([*EVO, "night", "--date", today], env=env, capture_output=True, text=True, timeout=600)
    assert night.returncode == 0, night.stderr
    page.click("[data-page=night]")
    page.click(f"#page-night button:text('{today}')")
    page.wait_for_function("() => { const imgs = [...document.querySelectorAll('#page-night .charts img')];"
                           " return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0); }", timeout=30_000)
    assert page.locator("#page-night .report").inner_text().strip()


def test_html_in_messages_and_answers_is_shown_as_text_and_runs_nothing(page, ui_server):
    payload = "<img src=x onerror=\"window.__xss='user'\">"
    send(page, payload)
    wait_turn_end(page)
    assert page.locator("#messages .msg.user").last.inner_text() == payload
    # A stored answer with markup, opened as a session: the same rendering as a streamed answer.
    with db(ui_server) as conn:
        conn.execute("INSERT INTO sessions (id, created_at, updated_at, title, model) VALUES ('xss', '2026-12-01T00:00:00', '2026-12-01T00:00:00', 'xss test', 'm')")
        conn.execute("INSERT INTO turns (session_id, number, message, answer, started_at) VALUES ('xss', 1, 'merhaba', ?, '2026-12-01T00:00:00')",
                     ("<script>window.__xss='model'</script> **kalın** <img src=y onerror=\"window.__xss='img'\">\n```python\nprint('<b>x</b>')\n```",))
    page.reload()
    page.click("#sessions li >> text=xss test")
    page.wait_for_selector("#messages .msg.assistant strong")
    text = last_answer(page).locator(".body").inner_text()
    assert "<script>window.__xss='model'</script>" in text and "print('<b>x</b>')" in text
    assert page.evaluate("window.__xss") is None and page.locator("#messages script, #messages img").count() == 0


def test_screenshots_at_desktop_and_phone_width(browser, ui_server):
    SHOTS.mkdir(parents=True, exist_ok=True)
    question = "Python'da iki sayıyı toplayan bir fonksiyon yazar mısın?"
    for width, height in ((1280, 900), (390, 844)):
        context = browser.new_context(viewport={"width": width, "height": height})
        pg = context.new_page()
        pg.goto(ui_server.url + "/")
        pg.wait_for_selector("#expert option", state="attached")
        if width > 700:  # a conversation of its own, answered here
            send(pg, question)
            wait_turn_end(pg)
        else:  # a phone: the sidebar opens from the menu button, and the same conversation opens from it
            pg.click("#menu")
            pg.click(f"#sessions li .open >> text={question[:20]}")
            pg.wait_for_selector("#messages .msg.assistant .badge")
            assert not pg.locator("#sessions").is_visible()  # choosing a session closed the menu
        assert pg.evaluate("document.documentElement.scrollWidth") <= width  # nothing wider than the screen
        pg.screenshot(path=str(SHOTS / f"chat-{width}.png"), full_page=False)
        assert (SHOTS / f"chat-{width}.png").stat().st_size > 10_000
        context.close()
