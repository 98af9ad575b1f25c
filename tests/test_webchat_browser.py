"""The web chat page in headless Chromium (Debian's /usr/bin/chromium driven by Playwright)
against the real app on a local port: typing, uploading and recording real speech, the key
prompt, the sources, the transcript and the playable voice reply."""

from __future__ import annotations

import math
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from bot.settings import PROJECT_DIR
from bot.web import create_app
from speech.factory import SpeechServices
from tests.conftest import SettingsFactory, Speak

CHROMIUM = "/usr/bin/chromium"  # `make test` installs it (apt-get install chromium)
HANDBOOK = str(PROJECT_DIR / "tests" / "fixtures" / "handbook")
WEB_KEY = "web-chat-key-0123456789"
SPOKEN = "When is the library open?"
# A document whose text and title hold markup: the page must show it as text.
KITCHEN = (
    "Staff <b>kitchen</b> notes\n\n"
    "The staff kitchen microwave shows"
    " <img src=x onerror=\"document.body.dataset.pwned='1'\"> on its display when it needs"
    " cleaning.\n"
)
TIMEOUT_MS = 60_000
# Play the reply for half a second in the page: its length, how far it got, its source.
PLAY = """async (audio) => {
    if (audio.readyState < 1) {
        await new Promise((resolve, reject) => {
            audio.addEventListener("loadedmetadata", resolve, { once: true });
            audio.addEventListener("error", () => reject(new Error(`${audio.error?.code}`)));
        });
    }
    await audio.play();
    await new Promise((resolve) => setTimeout(resolve, 500));
    audio.pause();
    return { duration: audio.duration, position: audio.currentTime, src: audio.src.slice(0, 22) };
}"""


@pytest.fixture(scope="module")
async def chat_url(
    settings_factory: SettingsFactory, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    """The app on 127.0.0.1 with WEB_CHAT_KEY set, the handbook and one document with markup."""
    data_dir = tmp_path_factory.mktemp("webchat")
    extra = data_dir / "extra"
    extra.mkdir()
    (extra / "kitchen.txt").write_text(KITCHEN)
    settings = settings_factory(
        data_dir=data_dir,
        knowledge_sources=[HANDBOOK, str(extra)],
        web_chat_key=WEB_KEY,
        stt_language="en",
    )
    server = TestServer(create_app(settings))
    await server.start_server()
    yield str(server.make_url("/"))
    await server.close()


@pytest.fixture(scope="module")
async def spoken_wav(
    speech: SpeechServices, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, float]:
    """Piper saying SPOKEN as a WAV file, Chromium's fake microphone input; and its length."""
    assert speech.tts is not None
    pcm = await speech.tts.synthesize(SPOKEN)
    pad = b"\x00\x00" * int(pcm.sample_rate * 0.3)
    path = tmp_path_factory.mktemp("mic") / "question.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(pcm.sample_rate)
        out.writeframes(pad + pcm.data + pad)
    return path, pcm.duration + 0.6


@pytest.fixture(scope="module")
async def browser(spoken_wav: tuple[Path, float]) -> AsyncIterator[Browser]:
    """Headless Chromium whose microphone plays `spoken_wav` once, autoplay allowed."""
    assert Path(CHROMIUM).is_file(), f"{CHROMIUM} is missing: `make browser` installs it"
    expect.set_options(timeout=TIMEOUT_MS)  # the first voice note loads the models
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={spoken_wav[0]}%noloop",
                "--autoplay-policy=no-user-gesture-required",
            ],
        )
        yield launched
        await launched.close()


class Watched:
    """A page in a fresh context, with the requests it made and the errors it logged."""

    def __init__(self, context: BrowserContext, page: Page, origin: str) -> None:
        self.context = context
        self.page = page
        self.origin = origin
        self.requests: list[str] = []
        self.errors: list[str] = []
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("console", self._console)

    def _console(self, message: Any) -> None:
        # Chromium logs every 4xx response; the page's 401 before the key is expected.
        if message.type == "error" and "status of 401" not in message.text:
            self.errors.append(message.text)

    def check_clean(self) -> None:
        assert self.errors == []
        assert self.requests and all(url.startswith(self.origin) for url in self.requests)


async def open_chat(browser: Browser, url: str, *, with_key: bool = True) -> Watched:
    context = await browser.new_context()
    if with_key:  # as if the key had been entered on an earlier visit
        await context.add_init_script(f"localStorage.setItem('suara.webChatKey', '{WEB_KEY}')")
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    watched = Watched(context, page, url.rstrip("/"))
    await page.goto(url)
    await expect(page.get_by_role("heading", name="Suara")).to_be_visible()
    return watched


async def test_the_page_asks_for_its_key_once_then_answers_with_sources(
    browser: Browser, chat_url: str
) -> None:
    chat = await open_chat(browser, chat_url, with_key=False)
    page = chat.page
    await page.get_by_label("Your question").fill("How many books can I borrow?")
    await page.get_by_label("Your question").press("Enter")
    key_field = page.get_by_label("This chat needs a key", exact=False)
    await expect(key_field).to_be_visible()
    await key_field.fill(WEB_KEY)
    await page.get_by_role("button", name="Save key").click()

    answer = page.locator(".bubble.bot").first
    await expect(answer.locator(".answer")).to_contain_text("ten books")
    await expect(answer.locator(".answer")).to_contain_text("[1]")
    await expect(answer.locator(".sources li").first).to_have_text(
        "Campus Library — Borrowing books"
    )
    assert await answer.locator("audio").count() == 0  # typed: answered by text
    await expect(page.locator("#key-form")).to_be_hidden()

    # A reload keeps the key and the conversation: the follow-up needs its context.
    await page.reload()
    await page.get_by_label("Your question").fill("For how long?")
    await page.get_by_role("button", name="Send").click()
    await expect(page.locator(".bubble.bot .answer").last).to_contain_text("three weeks")
    await expect(page.locator("#key-form")).to_be_hidden()
    chat.check_clean()
    await chat.context.close()


async def test_an_uploaded_voice_note_shows_transcript_and_answer_and_the_reply_plays(
    browser: Browser, chat_url: str, speak: Speak
) -> None:
    chat = await open_chat(browser, chat_url)
    page = chat.page
    audio = await speak("How many books can I borrow from the library at once?")
    await page.locator("#upload").set_input_files(
        files=[{"name": "question.ogg", "mimeType": "audio/ogg", "buffer": audio}]
    )
    turn = page.locator(".turn").last
    await expect(turn.locator(".bubble.user")).to_contain_text("question.ogg")
    await expect(turn.locator(".transcript")).to_contain_text("borrow")
    await expect(turn.locator(".bubble.bot .answer")).to_contain_text("ten books")
    player = turn.locator(".bubble.bot audio")
    await expect(player).to_have_count(1)
    played = await player.evaluate(PLAY)
    assert math.isfinite(played["duration"]) and played["duration"] > 1
    assert played["position"] > 0  # it played
    assert played["src"] == "data:audio/ogg;base64,"
    chat.check_clean()
    await chat.context.close()


async def test_a_question_recorded_from_the_microphone_is_answered(
    browser: Browser, chat_url: str, spoken_wav: tuple[Path, float]
) -> None:
    chat = await open_chat(browser, chat_url)
    page = chat.page
    record = page.get_by_role("button", name="Record")
    await record.click()
    stop = page.get_by_role("button", name="Stop")
    await expect(stop).to_have_attribute("aria-pressed", "true")
    await page.wait_for_timeout(spoken_wav[1] * 1000)
    await stop.click()
    turn = page.locator(".turn").last
    await expect(turn.locator(".bubble.user .who")).to_have_text("You (voice note)")
    transcript = turn.locator(".transcript")
    await expect(transcript).to_contain_text("library", ignore_case=True)
    await expect(transcript).to_contain_text("open", ignore_case=True)
    await expect(turn.locator(".bubble.bot .answer")).to_contain_text("10 p.m.")
    await expect(turn.locator(".bubble.bot audio")).to_have_count(1)
    chat.check_clean()
    await chat.context.close()


async def test_questions_answers_and_sources_are_shown_as_text_never_as_markup(
    browser: Browser, chat_url: str
) -> None:
    chat = await open_chat(browser, chat_url)
    page = chat.page
    question = '<img src=x onerror="document.body.dataset.pwned=1">What does the microwave show?'
    await page.get_by_label("Your question").fill(question)
    await page.get_by_role("button", name="Send").click()
    turn = page.locator(".turn").last
    await expect(turn.locator(".bubble.user .text")).to_have_text(question)
    answer = turn.locator(".bubble.bot .answer")
    await expect(answer).to_contain_text("microwave shows <img src=x onerror=")
    await expect(turn.locator(".sources li").first).to_have_text("Staff <b>kitchen</b> notes")
    assert await page.locator(".log img, .log b").count() == 0
    assert await page.evaluate("document.body.dataset.pwned") is None
    chat.check_clean()
    await chat.context.close()
