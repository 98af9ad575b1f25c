"""The speech package's exception tree; `AudioError` subclasses carry a polite user message."""


class SpeechError(Exception):
    """Base of every error raised by the speech package."""


class AudioError(SpeechError):
    """The audio itself is unusable; `user_message` says so politely."""

    user_message = "Sorry, I couldn't use that audio. Could you try again or type your question?"


class EmptyAudio(AudioError):
    user_message = "That voice note was empty. Could you record it again?"


class CorruptAudio(AudioError):
    user_message = "Sorry, I couldn't open that audio file. Could you send it again?"


class SilentAudio(AudioError):
    user_message = "I couldn't hear anything in that voice note. Could you record it again?"


class AudioTooLong(AudioError):
    user_message = "That voice note is too long for me. Please keep it shorter, or type it."


class AudioTooLarge(AudioError):
    user_message = "That audio file is too large for me. Please send a shorter one."


class NoSpeech(AudioError):
    user_message = "I couldn't make out any words. Could you say it again, or type it?"


class ProviderError(SpeechError):
    """A speech provider (local model or remote service) failed."""


class ProbeError(SpeechError):
    """A check of `python -m bot doctor` failed; `fix` says what to do about it."""

    def __init__(self, message: str, fix: str) -> None:
        super().__init__(message)
        self.fix = fix
