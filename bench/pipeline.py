"""Voice-to-voice latency: a ~5 s spoken question through the whole pipeline, per-stage medians.

Run: `.venv/bin/python -m bench.pipeline [--runs 7] [--question "..."]` (models load once).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from bot.components import open_components
from bot.logs import setup_logging
from bot.settings import load_settings
from handlers.messages import IncomingMessage, Media
from speech.transcode import to_voice_note

QUESTION = "How do I switch the speech to text provider to Prosa, and which settings does it need?"
STAGES = ("download", "transcode", "stt", "emotion", "retrieve", "generate", "tts", "total")


async def main(runs: int, question: str, language: str | None) -> None:
    setup_logging("WARNING")
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(
            _env_file=None, data_dir=Path(tmp), stt_language=language, knowledge_sources=[]
        )
        async with open_components(settings) as parts:
            started = time.perf_counter()
            await parts.speech.warm_up()
            load_s = time.perf_counter() - started
            started = time.perf_counter()
            report = await parts.reindex()
            index_s = time.perf_counter() - started

            tts = parts.speech.tts
            assert tts is not None, "the benchmark speaks its question with the embedded TTS"
            voice = await to_voice_note(await tts.synthesize(question, "en"))
            print(f"cpus: {os.cpu_count()}; models loaded in {load_s:.2f} s")
            print(f"index: {report.added} documents, {report.chunks} chunks in {index_s:.2f} s")
            print(f"question: {voice.duration:.1f} s of speech, {len(voice.data)} bytes OGG/Opus")
            print(f"STT language: {language or 'detected'}")

            samples: dict[str, list[float]] = {stage: [] for stage in STAGES}
            for run in range(runs + 1):
                reply = await parts.pipeline.handle(
                    IncomingMessage(
                        channel="bench",
                        chat_id=f"run-{run}",
                        message_id=str(run),
                        media=Media(mime_type="audio/ogg", data=voice.data),
                    )
                )
                if reply.error:
                    raise SystemExit(f"pipeline failed: {reply.error}: {reply.text}")
                if run == 0:
                    print(f"transcript: {reply.transcript!r}")
                    print(f"answer: {reply.text[:160]!r}...")
                    print(f"reply voice: {reply.voice.duration if reply.voice else 0:.1f} s\n")
                    continue  # the first run warms caches; it is not counted
                for stage in STAGES:
                    samples[stage].append(reply.timings.get(stage, 0.0))

            print(f"{'stage':<10}{'median ms':>10}{'min ms':>9}{'max ms':>9}   ({runs} runs)")
            for stage in STAGES:
                values = samples[stage]
                print(
                    f"{stage:<10}{statistics.median(values):>10.0f}"
                    f"{min(values):>9.0f}{max(values):>9.0f}"
                )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--question", default=QUESTION)
    parser.add_argument("--language", default=None, help="fix the STT language (default: detect)")
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.question, args.language))
