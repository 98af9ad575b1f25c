"""End to end through `python -m bot`: a spoken question in, grounded answer and voice note out."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from bot.settings import PROJECT_DIR
from speech.factory import SpeechServices
from speech.transcode import to_pcm16k
from tests.serve_process import HANDBOOK, cli_env, start_serve, wait_until_serving


def run_cli(
    args: list[str], data_dir: Path, stdin: str | None = None, **extra: str
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=PROJECT_DIR,
        env=cli_env(data_dir, **extra),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


async def test_spoken_question_gets_grounded_answer_and_voice_reply(
    tmp_path: Path,
    speak: Callable[[str], Awaitable[bytes]],
    speech: SpeechServices,
) -> None:
    question = tmp_path / "question.ogg"
    question.write_bytes(await speak("What time does the library open on Saturdays?"))
    reply_path = tmp_path / "reply.ogg"

    result = run_cli(
        ["ask", "--audio", str(question), "--json", "--voice-out", str(reply_path)],
        tmp_path / "data",
    )
    out = json.loads(result.stdout)

    transcript = out["transcript"].lower()
    assert "library" in transcript and "saturday" in transcript
    assert out["language"] == "en"
    assert out["declined"] is False
    assert "9 a.m." in out["answer"]
    assert "[1]" in out["answer"]
    assert out["sources"][0]["source"].endswith("library.md")
    assert out["sources"][0]["section"] == "Opening hours"
    assert out["emotion"]["label"] in {"neutral", "happy", "sad", "angry", "fearful", "surprised"}
    for stage in ("transcode", "stt", "emotion", "retrieve", "generate", "tts"):
        assert out["timings"][stage] >= 0, stage

    voice = reply_path.read_bytes()
    assert voice.startswith(b"OggS") and b"OpusHead" in voice[:200]
    # The voice reply is real speech saying the answer.
    pcm = await to_pcm16k(
        voice, "audio/ogg", max_bytes=10_000_000, max_seconds=120, silence_dbfs=-50
    )
    assert pcm.duration > 1.0
    heard = (await speech.stt.transcribe(pcm, "en")).text.lower()
    assert "saturday" in heard or "library" in heard


def test_uncovered_questions_are_declined_and_stdin_lines_answered_in_turn(
    tmp_path: Path,
) -> None:
    questions = "\n".join(
        [
            "How many books can I borrow at once?",
            "Who won the football World Cup in 2018?",
            "What is the capital of France?",
            "How much does a replacement student card cost?",
        ]
    )
    result = run_cli(["ask", "--json", "-"], tmp_path / "data", stdin=questions + "\n")
    answers = [json.loads(line) for line in result.stdout.splitlines()]

    assert [a["declined"] for a in answers] == [False, True, True, False]
    assert "ten books" in answers[0]["answer"]
    assert answers[0]["sources"][0]["source"].endswith("library.md")
    retrieved = answers[0]["retrieved"]
    assert 1 <= len(retrieved) <= 5
    assert retrieved[0]["section"] == "Borrowing books"
    for declined in answers[1:3]:
        assert declined["sources"] == []
        assert "couldn't find" in declined["answer"]
        assert "2018" not in declined["answer"] and "Paris" not in declined["answer"]
    assert "15 dollars" in answers[3]["answer"]
    assert answers[3]["sources"][0]["source"].endswith("student-card.md")


async def test_chat_session_with_text_voice_and_reset(
    tmp_path: Path, speak: Callable[[str], Awaitable[bytes]]
) -> None:
    voice = tmp_path / "question.ogg"
    voice.write_bytes(await speak("How much does a replacement student card cost?"))
    session = "\n".join(
        ["How many books can I borrow?", f"@{voice}", "/reset", "@/no/such/file.ogg", "/quit"]
    )
    replies = tmp_path / "replies"
    result = run_cli(
        ["chat", "--chat", "demo", "--voice-dir", str(replies)], tmp_path / "data", stdin=session
    )
    out = result.stdout
    assert "ten books" in out
    assert "You said:" in out and "15 dollars" in out
    assert "I've forgotten our conversation." in out
    assert "no such audio file: /no/such/file.ogg" in out
    assert sorted(p.name for p in replies.iterdir()) == ["reply-1.ogg", "reply-2.ogg"]
    assert all(p.read_bytes().startswith(b"OggS") for p in replies.iterdir())


def test_index_reports_added_changed_removed_unchanged(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for doc in HANDBOOK.glob("*.md"):
        (corpus / doc.name).write_text(doc.read_text())
    data = tmp_path / "data"

    first = run_cli(["index", str(corpus)], data)
    assert "4 added, 0 changed, 0 removed, 0 unchanged" in first.stdout

    (corpus / "library.md").write_text((corpus / "library.md").read_text() + "\nNew rule.\n")
    (corpus / "enrolment.md").unlink()
    (corpus / "parking.md").write_text("# Parking\n\n## Permits\n\nPermits cost 90 dollars.\n")
    second = json.loads(run_cli(["index", "--json", str(corpus)], data).stdout)
    assert (second["added"], second["changed"], second["removed"], second["unchanged"]) == (
        1,
        1,
        1,
        2,
    )
    assert second["errors"] == []


def test_default_knowledge_base_is_the_projects_own_docs(tmp_path: Path) -> None:
    result = run_cli(
        ["ask", "--json", "How do I choose the speech-to-text provider?"],
        tmp_path / "data",
        KNOWLEDGE_SOURCES="",
    )
    out = json.loads(result.stdout)
    assert out["declined"] is False
    assert any("/docs/" in s["source"] for s in out["sources"])
    assert "STT_PROVIDER" in out["answer"] + " ".join(s["text"] for s in out["sources"])


async def test_serve_answers_health(tmp_path: Path, unused_tcp_port: int) -> None:
    data = tmp_path / "data"
    process = start_serve(data, unused_tcp_port)
    try:
        body = await wait_until_serving(f"http://127.0.0.1:{unused_tcp_port}")
        assert body["status"] == "ok"
        assert body["index"]["documents"] == 4
        assert body["providers"]["stt"] == "whisper"
        assert body["providers"]["llm"] == "extractive"
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert process.returncode == 0, (data / "serve.log").read_text()[-2000:]


async def test_serve_on_a_port_in_use_says_so(tmp_path: Path, unused_tcp_port: int) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", unused_tcp_port))
        taken.listen()
        result = subprocess.run(
            [sys.executable, "-m", "bot", "serve", "--port", str(unused_tcp_port)],
            cwd=PROJECT_DIR,
            env=cli_env(tmp_path / "data", REINDEX_ON_START="false"),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 1
    assert f"error: cannot listen on 127.0.0.1:{unused_tcp_port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_index_status_shows_the_last_runs(tmp_path: Path) -> None:
    data = tmp_path / "data"
    empty = run_cli(["index", "--status"], data)
    assert "no index runs yet" in empty.stdout
    run_cli(["index"], data)
    run_cli(["index"], data)
    runs = json.loads(run_cli(["index", "--status", "--json"], data).stdout)["runs"]
    summary = [(r["id"], r["trigger"], r["status"]) for r in runs]
    assert summary == [(2, "cli", "ok"), (1, "cli", "ok")]
    assert runs[0]["unchanged"] == runs[1]["added"] > 0 and runs[0]["added"] == 0
    assert runs[0]["finished_at"] >= runs[0]["started_at"] >= runs[1]["finished_at"]
    text = run_cli(["index", "--status", "--last", "1"], data).stdout
    assert text.startswith("#2 ") and text.count("\n") == 1 and "cli: ok" in text
