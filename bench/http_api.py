"""The HTTP API under load: /v1/chat latency and throughput, /v1/audio stage by stage, and what
a /metrics scrape costs, against `serve` in its own process.

Run: `.venv/bin/python -m bench.http_api [--questions 400] [--conversations 16] [--spoken 7]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.webhook_load import free_port, p99, serve_env
from bot.settings import load_settings
from speech.factory import build_speech
from speech.transcode import to_voice_note
from speech.types import VoiceNote
from tests.serve_process import start_serve, wait_until_serving

KEY = "bench-api-key-0123456789"
QUESTIONS = (
    "How long can I borrow a book?",
    "When is the library open on Saturday?",
    "How do I reset my campus password?",
    "Where can I print?",
)
SPOKEN = "When is the library open on Saturday?"
STAGES = ("transcode", "stt", "emotion", "retrieve", "generate", "tts", "total")


async def post(
    session: aiohttp.ClientSession, url: str, conversation: str, **kwargs: Any
) -> dict[str, Any]:
    headers = {"X-API-Key": KEY, "X-Conversation-Id": conversation}
    async with session.post(url, headers=headers, **kwargs) as response:
        body: dict[str, Any] = await response.json()
        if response.status != 200:
            raise SystemExit(f"{url} answered {response.status}: {body}")
        return body


async def chat_load(
    session: aiohttp.ClientSession, base: str, questions: int, conversations: int
) -> None:
    """`conversations` clients, each asking its questions one after another (a conversation is
    answered one turn at a time), together `questions` questions."""
    latencies: list[float] = []
    declined = 0

    async def client(number: int) -> None:
        nonlocal declined
        for turn in range(questions // conversations):
            started = time.perf_counter()
            body = await post(
                session,
                f"{base}/v1/chat",
                f"bench-{number}",
                json={"message": QUESTIONS[(number + turn) % len(QUESTIONS)]},
            )
            latencies.append((time.perf_counter() - started) * 1000)
            declined += bool(body["declined"])

    started = time.perf_counter()
    await asyncio.gather(*(client(n) for n in range(conversations)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    print(
        f"/v1/chat: {len(latencies)} typed questions from {conversations} conversations in"
        f" {elapsed:.1f} s: {len(latencies) / elapsed:.0f} answers/s; latency p50"
        f" {statistics.median(latencies):.0f} ms, p99 {p99(latencies):.0f} ms"
        f" ({declined} declined)"
    )


async def spoken(session: aiohttp.ClientSession, base: str, voice: bytes, runs: int) -> None:
    """One spoken question at a time: the server's exec_time per stage, and the round trip."""
    samples: dict[str, list[float]] = {stage: [] for stage in (*STAGES, "round trip")}
    for run in range(runs + 1):
        form = aiohttp.FormData()
        form.add_field("audio", voice, filename="q.ogg", content_type="audio/ogg")
        started = time.perf_counter()
        body = await post(session, f"{base}/v1/audio", f"spoken-{run}", data=form)
        round_trip = (time.perf_counter() - started) * 1000
        if run == 0:  # the first one warms the models' caches
            continue
        assert body["voice"] is not None and body["transcript"], body
        for stage in STAGES:
            samples[stage].append(body["exec_time"].get(stage, 0.0))
        samples["round trip"].append(round_trip)
    medians = ", ".join(f"{k} {statistics.median(v):.0f}" for k, v in samples.items())
    print(f"/v1/audio, median ms over {runs} spoken questions: {medians}")


async def scrapes(session: aiohttp.ClientSession, base: str, count: int = 50) -> None:
    latencies = []
    size = 0
    for _ in range(count):
        started = time.perf_counter()
        async with session.get(f"{base}/metrics") as response:
            size = len(await response.read())
        latencies.append((time.perf_counter() - started) * 1000)
    latencies.sort()
    print(
        f"/metrics: {size} bytes; scrape p50 {statistics.median(latencies):.1f} ms,"
        f" max {latencies[-1]:.1f} ms"
    )


async def speak(text: str, data_dir: Path) -> VoiceNote:
    """The question as OGG/Opus, spoken by the embedded TTS."""
    settings = load_settings(_env_file=None, data_dir=data_dir)
    speech = build_speech(settings)
    assert speech.tts is not None
    return await to_voice_note(await speech.tts.synthesize(text, "en"))


async def main(questions: int, conversations: int, runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        note = await speak(SPOKEN, Path(tmp) / "tts")
        port = free_port()
        process = start_serve(
            Path(tmp) / "data",
            port,
            API_KEYS=KEY,
            STT_LANGUAGE="en",
            **serve_env(),  # no rate limits: measure answering
        )
        base = f"http://127.0.0.1:{port}"
        try:
            await wait_until_serving(base, models=True, timeout=180)
            print(f"cpus: {os.cpu_count()}; server: python -m bot serve (extractive answers)")
            print(f"spoken question: {note.duration:.1f} s, {len(note.data)} bytes OGG/Opus")
            async with aiohttp.ClientSession() as session:
                await chat_load(session, base, questions, conversations)
                await spoken(session, base, note.data, runs)
                await scrapes(session, base)
        finally:
            process.terminate()
            process.wait(timeout=30)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--questions", type=int, default=400)
    parser.add_argument("--conversations", type=int, default=16)
    parser.add_argument("--spoken", type=int, default=7)
    args = parser.parse_args()
    asyncio.run(main(args.questions, args.conversations, args.spoken))
