"""The chat commands every channel shares: start, help, reset, voice on|off, lang <code>."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from handlers.messages import Reply
from rag.language import PHRASES, phrase
from speech.language import language_code
from storage.chat_prefs import ChatPrefsStore

COMMANDS = frozenset({"start", "help", "reset", "voice", "lang"})


@dataclass(frozen=True)
class CommandContext:
    thread_id: str  # the conversation (and preferences) this chat owns
    prefs: ChatPrefsStore
    forget: Callable[[str], Awaitable[None]]  # clears a thread's conversation memory
    language: str | None  # the chat's language, for the reply
    prefix: str = "/"  # how commands are written on this channel ("" on WhatsApp)


async def run_command(name: str, args: list[str], ctx: CommandContext) -> Reply:
    """The reply to one command; changes the chat's preferences or memory as asked."""
    lang, p = ctx.language, ctx.prefix
    arg = args[0].lower() if args else ""
    if name == "start":
        text = phrase("greeting", lang) + "\n\n" + phrase("help", lang).format(p=p)
    elif name == "help":
        text = phrase("help", lang).format(p=p)
    elif name == "reset":
        await ctx.forget(ctx.thread_id)
        text = phrase("reset_done", lang)
    elif name == "voice" and arg in ("on", "off"):
        ctx.prefs.set_voice(ctx.thread_id, arg == "on")
        text = phrase(f"voice_{arg}", lang)
    elif name == "voice":
        text = phrase("voice_usage", lang).format(p=p)
    elif name == "lang" and arg == "auto":
        ctx.prefs.set_language(ctx.thread_id, None)
        text = phrase("lang_auto", lang)
    elif name == "lang" and language_code(arg) in PHRASES:
        lang = language_code(arg)
        ctx.prefs.set_language(ctx.thread_id, lang)
        text = phrase("lang_set", lang).format(name=phrase(f"name_{lang}", lang))
    elif name == "lang":
        text = phrase("lang_usage", lang).format(p=p)
    else:
        text = phrase("unknown_command", lang).format(p=p)
    return Reply(text=text, language=lang)
