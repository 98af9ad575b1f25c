"""Prosa streaming speech-to-text against a local websocket server speaking its protocol."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from speech.errors import NoSpeech, ProviderError
from speech.factory import build_speech
from speech.stt_prosa import CHUNK_BYTES, ProsaStt
from speech.transcode import to_pcm16k
from speech.types import Pcm
from tests.conftest import SettingsFactory, Speak
from tests.fakes.prosa_ws import FakeProsa


@pytest.fixture
async def prosa() -> AsyncIterator[FakeProsa]:
    fake = await FakeProsa().start()
    yield fake
    await fake.stop()


def client(fake: FakeProsa, *, key: str | None = None, timeout: float = 5.0) -> ProsaStt:
    return ProsaStt(url=fake.url, api_key=key or fake.api_key, timeout=timeout)


async def test_streams_the_exact_pcm_and_joins_results_in_order(
    prosa: FakeProsa, settings_factory: SettingsFactory, speak: Speak
) -> None:
    note = await speak("Selamat pagi, apa kabar?")
    pcm = await to_pcm16k(note, "audio/ogg", max_bytes=10**7, max_seconds=60, silence_dbfs=-50)
    prosa.expected_audio = pcm.data  # the server closes with 4400 if the bytes differ
    prosa.results = ["Selamat pagi", "apa kabar"]
    settings = settings_factory(
        stt_provider="prosa", prosa_url=prosa.url, prosa_api_key=prosa.api_key
    )
    stt = build_speech(settings).stt
    assert isinstance(stt, ProsaStt)

    transcript = await stt.transcribe(pcm)

    assert transcript.text == "Selamat pagi apa kabar"
    assert transcript.language == "id"
    (session,) = prosa.sessions
    assert session.api_key == prosa.api_key and session.ended
    assert session.config is not None
    assert session.config["model"] == "stt-general-online"
    assert session.config["audio"] == {"format": "s16le", "channels": 1, "sample_rate": 16000}
    sizes = [len(chunk) for chunk in session.chunks]
    assert all(size == CHUNK_BYTES for size in sizes[:-1]) and 0 < sizes[-1] <= CHUNK_BYTES
    assert session.audio == pcm.data


async def test_other_sample_rates_are_resampled_to_16k(prosa: FakeProsa) -> None:
    pcm = Pcm(b"\x10\x00" * 24_000, 24_000)  # one second at 24 kHz
    await client(prosa).transcribe(pcm, "en")
    assert len(prosa.sessions[0].audio) == 32_000


async def test_a_wrong_key_is_a_provider_error(prosa: FakeProsa) -> None:
    with pytest.raises(ProviderError, match=r"401.*PROSA_API_KEY"):
        await client(prosa, key="wrong").transcribe(Pcm(b"\x00\x01" * 1600, 16_000))
    assert prosa.sessions[0].api_key == "wrong"


async def test_a_hanging_server_times_out(prosa: FakeProsa) -> None:
    prosa.hang = True
    started = time.perf_counter()
    with pytest.raises(ProviderError, match="timed out"):
        await client(prosa, timeout=0.5).transcribe(Pcm(b"\x00\x01" * 16_000, 16_000))
    assert time.perf_counter() - started < 3.0
    assert prosa.sessions[0].ended  # it hung after the whole stream was sent


async def test_an_abnormal_close_is_a_provider_error_with_its_code(prosa: FakeProsa) -> None:
    prosa.close_code, prosa.close_reason = 4003, "quota exceeded"
    with pytest.raises(ProviderError, match="4003 quota exceeded"):
        await client(prosa).transcribe(Pcm(b"\x00\x01" * 1600, 16_000))


async def test_no_results_means_no_speech(prosa: FakeProsa) -> None:
    prosa.results = []
    with pytest.raises(NoSpeech):
        await client(prosa).transcribe(Pcm(b"\x00\x01" * 1600, 16_000))


async def test_an_unreachable_server_is_a_provider_error() -> None:
    fake = await FakeProsa().start()
    url = fake.url
    await fake.stop()
    stt = ProsaStt(url=url, api_key="k", timeout=2.0)
    with pytest.raises(ProviderError, match="connection failed"):
        await stt.transcribe(Pcm(b"\x00\x01" * 1600, 16_000))


async def test_the_fake_really_checks_the_audio(prosa: FakeProsa) -> None:
    prosa.expected_audio = b"\x00\x01" * 1600
    with pytest.raises(ProviderError, match="4400"):
        await client(prosa).transcribe(Pcm(b"\x00\x02" * 1600, 16_000))
