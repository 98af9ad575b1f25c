"""The command line: `index`, `ask`, `chat`, `serve`, `telegram` and `doctor`
(`python -m bot --help`)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import mimetypes
import sys
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from bot.components import Components, open_components
from bot.errors import BotError
from bot.log_context import bind_message
from bot.logs import setup_logging
from bot.settings import Settings, load_settings
from handlers.messages import IncomingMessage, Media, Reply
from rag.errors import RagError
from rag.index_runs import RunLog
from rag.index_store import IndexStore
from rag.language import phrase
from rag.types import IndexReport
from speech.errors import SpeechError
from storage.errors import StorageError

log = logging.getLogger(__name__)

CLI_CHANNEL = "cli"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bot",
        description="Suara: a voice-capable knowledge-base assistant.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    index = sub.add_parser("index", help="index documents (default: KNOWLEDGE_SOURCES or docs/)")
    index.add_argument("paths", nargs="*", help="folders, files or globs to index")
    index.add_argument("--json", action="store_true", help="print one JSON object")
    index.add_argument(
        "--status", action="store_true", help="show the last runs instead of indexing"
    )
    index.add_argument("--last", type=int, default=5, help="how many runs --status shows")

    ask = sub.add_parser("ask", help="ask one question (text, audio, or '-' for stdin lines)")
    ask.add_argument("question", nargs="?", help="the question; '-' reads one per stdin line")
    ask.add_argument("--audio", type=Path, help="an audio file holding the spoken question")
    ask.add_argument("--chat", default="local", help="conversation id (memory is per chat)")
    ask.add_argument("--json", action="store_true", help="print one JSON object per answer")
    ask.add_argument("--voice-out", type=Path, help="write the spoken reply (OGG/Opus) here")

    chat = sub.add_parser("chat", help="an interactive session ('@file.ogg' sends audio)")
    chat.add_argument("--chat", default=None, help="conversation id (default: a new one)")
    chat.add_argument("--voice-dir", type=Path, help="save each spoken reply in this folder")

    serve = sub.add_parser("serve", help="run the web app: channels' webhooks, health, dispatcher")
    serve.add_argument("--host", help="default: HOST")
    serve.add_argument("--port", type=int, help="default: PORT")
    serve.add_argument(
        "--telegram-polling",
        action="store_true",
        help="fetch Telegram updates by long polling (no public URL needed)",
    )

    telegram = sub.add_parser("telegram", help="manage the Telegram webhook")
    telegram.add_argument(
        "action",
        choices=["set-webhook", "delete-webhook", "info"],
        help="set-webhook registers PUBLIC_BASE_URL/telegram/webhook with the secret",
    )
    telegram.add_argument(
        "--drop-pending", action="store_true", help="discard updates Telegram is holding"
    )

    doctor = sub.add_parser("doctor", help="check settings, files, models and configured services")
    doctor.add_argument("--json", action="store_true", help="print one JSON object")
    doctor.add_argument(
        "--timeout", type=float, default=5.0, help="seconds for each service to answer (default 5)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "doctor":  # reports invalid settings as a failed check
        from bot.doctor import run_doctor

        return run_doctor(as_json=args.json, timeout=args.timeout)
    try:
        settings = load_settings()
    except BotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level, settings.log_format)
    if args.command == "serve":
        return serve(settings, args.host, args.port, telegram_polling=args.telegram_polling)
    if args.command == "index" and args.status:
        return index_status(settings, args.last, as_json=args.json)
    try:
        if args.command == "telegram":
            from bot.telegram_admin import run_telegram_command

            return asyncio.run(run_telegram_command(settings, args.action, args.drop_pending))
        return asyncio.run(_run(args, settings))
    except BotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (RagError, SpeechError, StorageError) as exc:
        log.exception("%s failed", args.command)
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    async with open_components(settings) as components:
        if args.command == "index":
            report = await components.reindex(args.paths or None, trigger="cli")
            _print_report(report, as_json=args.json)
            if args.paths and report.removed and not args.json:
                print(
                    "note: the index now holds only the paths given; "
                    "`python -m bot index` alone indexes KNOWLEDGE_SOURCES again",
                    file=sys.stderr,
                )
            return (
                1 if report.errors and not (report.added + report.changed + report.unchanged) else 0
            )
        await components.ensure_indexed()
        if args.command == "ask":
            return await _ask(components, args)
        return await _chat(components, args.chat or uuid.uuid4().hex[:8], args.voice_dir)
    return 0


def _print_report(report: IndexReport, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps({**report.__dict__, "errors": [list(e) for e in report.errors]}))
        return
    print(
        f"documents: {report.added} added, {report.changed} changed, {report.removed} removed, "
        f"{report.unchanged} unchanged ({report.chunks} chunks)"
    )
    for source, error in report.errors:
        print(f"error: {source}: {error}", file=sys.stderr)


def index_status(settings: Settings, last: int, *, as_json: bool) -> int:
    """Print the last `last` index runs, newest first (`index --status`)."""
    path = settings.path("index.sqlite3")
    IndexStore(path).close()  # creates or upgrades the index schema first
    runs = RunLog(path).last(max(last, 1))
    if as_json:
        print(json.dumps({"runs": [run.to_json() for run in runs]}, ensure_ascii=False))
        return 0
    if not runs:
        print("no index runs yet: run `python -m bot index`")
    for run in runs:
        started = datetime.fromtimestamp(run.started_at).isoformat(" ", "seconds")
        took = "" if run.duration_s is None else f" in {run.duration_s:.1f} s"
        print(
            f"#{run.id} {started} {run.trigger}: {run.status}{took} - {run.added} added,"
            f" {run.changed} changed, {run.removed} removed, {run.unchanged} unchanged,"
            f" {len(run.errors)} errors"
        )
        if run.failure:
            print(f"  failed: {run.failure}")
        for source, message in run.errors:
            print(f"  error: {source}: {message}")
    return 0


def _audio_message(path: Path, chat_id: str, want_voice: bool) -> IncomingMessage:
    if not path.is_file():
        raise BotError(f"no such audio file: {path}")
    mime = mimetypes.guess_type(path.name)[0]
    return IncomingMessage(
        channel=CLI_CHANNEL,
        chat_id=chat_id,
        message_id=uuid.uuid4().hex,
        media=Media(mime_type=mime, data=path.read_bytes()),
        want_voice=want_voice,
    )


def _text_message(text: str, chat_id: str, want_voice: bool) -> IncomingMessage:
    return IncomingMessage(
        channel=CLI_CHANNEL,
        chat_id=chat_id,
        message_id=uuid.uuid4().hex,
        text=text,
        want_voice=want_voice,
    )


async def _ask(components: Components, args: argparse.Namespace) -> int:
    want_voice = args.voice_out is not None
    if args.audio is not None:
        messages = [_audio_message(args.audio, args.chat, want_voice)]
    elif args.question == "-":
        if args.voice_out is not None:
            raise BotError("--voice-out takes one question, not '-'")
        return await _ask_stdin(components, args.chat, args.json, sys.stdin)
    elif args.question:
        messages = [_text_message(args.question, args.chat, want_voice)]
    else:
        raise BotError("ask needs a question, '-' or --audio FILE")
    reply = await _handle_safely(components, messages[0])
    if args.voice_out is not None and reply.voice is not None:
        args.voice_out.write_bytes(reply.voice.data)
    _print_reply(reply, as_json=args.json)
    return 0 if reply.error is None else 1


async def _ask_stdin(components: Components, chat_id: str, as_json: bool, stream: TextIO) -> int:
    """Answer each line of `stream` in turn (one reply per line), models loaded once; a line
    that fails gets an error reply and the rest go on."""
    failures = 0
    while line := await asyncio.to_thread(stream.readline):
        message = _text_message(line.strip(), chat_id, False)
        reply = await _handle_safely(components, message)
        failures += reply.error == "InternalError"
        _print_reply(reply, as_json=as_json)
        sys.stdout.flush()
    return 1 if failures else 0


async def _handle_safely(components: Components, message: IncomingMessage) -> Reply:
    """The pipeline's reply, or an apology when it fails unexpectedly (logged with context)."""
    try:
        with bind_message(f"{message.channel}:{message.message_id}"):
            return await components.pipeline.handle(message)
    except Exception:
        log.exception("could not answer %s message %s", message.thread_id, message.message_id)
        return Reply(text=phrase("internal_error", message.language), error="InternalError")


def _print_reply(reply: Reply, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(reply.to_json(), ensure_ascii=False))
        return
    if reply.transcript is not None:
        print(f"You said: {reply.transcript}")
    print(reply.text)
    if reply.sources:
        print("\nSources:")
        for number, source in enumerate(reply.sources, start=1):
            section = f" – {source.section}" if source.section else ""
            print(f"  [{number}] {source.title}{section} ({source.source})")
    details: list[str] = []
    if reply.emotion is not None:
        details.append(f"emotion {reply.emotion.label} {reply.emotion.score:.2f}")
    details.extend(f"{stage} {ms:.0f} ms" for stage, ms in reply.timings.items())
    print(f"\n({', '.join(details)})", file=sys.stderr)


async def _chat(components: Components, chat_id: str, voice_dir: Path | None) -> int:
    print(
        f"Suara chat {chat_id}. Ask a question; '@file.ogg' sends audio, "
        "'/reset' forgets the conversation, '/quit' leaves."
    )
    if voice_dir is not None:
        voice_dir.mkdir(parents=True, exist_ok=True)
    turn = 0
    while True:
        try:
            line = await asyncio.to_thread(input, "you> ")
        except EOFError:
            return 0
        line = line.strip()
        if not line:
            continue
        if line in ("/quit", "/exit"):
            return 0
        if line == "/reset":
            await components.agent.reset(f"{CLI_CHANNEL}:{chat_id}")
            print("bot> I've forgotten our conversation.")
            continue
        want_voice = voice_dir is not None
        try:
            if line.startswith("@"):
                message = _audio_message(Path(line[1:].strip()).expanduser(), chat_id, want_voice)
            else:
                message = _text_message(line, chat_id, want_voice)
        except BotError as exc:
            print(f"bot> {exc}")
            continue
        reply = await _handle_safely(components, message)
        print("bot> ", end="")
        _print_reply(reply, as_json=False)
        if voice_dir is not None and reply.voice is not None:
            turn += 1
            path = voice_dir / f"reply-{turn}.ogg"
            path.write_bytes(reply.voice.data)
            print(f"(voice reply: {path})")


def serve(
    settings: Settings, host: str | None, port: int | None, *, telegram_polling: bool = False
) -> int:
    from aiohttp import web

    from bot.web import create_app

    try:
        app = create_app(settings, telegram_polling=telegram_polling, freeze_gc=True)
    except BotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        "Suara is starting. Health: /health. Ask it from another terminal, e.g.\n"
        '  .venv/bin/python -m bot ask "How do I add my own documents?"',
        file=sys.stderr,
    )
    host, port = host or settings.host, port or settings.port
    # Hand the GIL over every 1 ms (default 5 ms): answers computed in worker threads then
    # delay a webhook's acknowledgement by at most a few handovers (bench.telegram_webhook).
    sys.setswitchinterval(0.001)
    try:
        web.run_app(app, host=host, port=port, print=_listening)
    except OSError as exc:
        print(f"error: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        return 1
    except BotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _listening(message: Any) -> None:
    print(message, file=sys.stderr)
