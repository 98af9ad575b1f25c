"""The OpenAPI 3.1 description of the HTTP API and the web chat's endpoints, at /openapi.json.

Written by hand to match bot/api.py; tests/test_api.py checks every route and every status
the tests meet against it.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from aiohttp import web


def _version() -> str:
    try:
        return version("suara")
    except PackageNotFoundError:
        return "0.0.0"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref("Error")}}}


_ANSWERED = {
    "description": "The answer (a declined one too: `declined` is true).",
    "headers": {
        "X-Conversation-Id": {
            "description": "The conversation answered in (a new one when none was sent).",
            "schema": {"type": "string"},
        }
    },
    "content": {"application/json": {"schema": _ref("Answer")}},
}

_COMMON = {
    "400": _error("Malformed body, missing or empty field, or a wrong X-Conversation-Id."),
    "401": _error("The key is missing or wrong."),
    "404": _error("These endpoints are off on this server."),
    "413": _error("The body or the audio is over its limit, or the question over MAX_TEXT_CHARS."),
    "415": _error("Wrong Content-Type (or a non-audio `audio` part)."),
    "429": {
        **_error("Over a per-user rate limit (RATE_LIMIT_PER_MINUTE, _PER_HOUR, _PER_DAY)."),
        "headers": {
            "Retry-After": {
                "description": "Seconds until the next question is allowed.",
                "schema": {"type": "integer"},
            }
        },
    },
    "500": _error("Answering failed unexpectedly; the error is logged."),
    "503": _error("The knowledge base is not indexed yet, or the speech service is down."),
}

_CHAT_BODY = {
    "required": True,
    "content": {"application/json": {"schema": _ref("ChatRequest")}},
}

_AUDIO_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["audio"],
                "properties": {
                    "audio": {
                        "type": "string",
                        "format": "binary",
                        "description": "OGG/Opus, WebM/Opus, MP3, M4A/AAC, WAV or AMR; at most"
                        " MAX_AUDIO_BYTES and MAX_AUDIO_SECONDS.",
                    }
                },
            },
            "encoding": {"audio": {"contentType": "audio/*, application/octet-stream"}},
        }
    },
}


def _operation(summary: str, body: dict[str, Any], security: list[Any], audio: bool) -> Any:
    responses: dict[str, Any] = {"200": _ANSWERED, **_COMMON}
    if audio:
        responses["422"] = _error(
            "The audio is unusable (corrupt, empty, silent, too long, or no words heard);"
            " `message` says so politely in the user's language and `reason` names the fault."
        )
    return {
        "post": {
            "summary": summary,
            "parameters": [{"$ref": "#/components/parameters/ConversationId"}],
            "security": security,
            "requestBody": body,
            "responses": dict(sorted(responses.items())),
        }
    }


_API: list[dict[str, list[str]]] = [{"ApiKey": []}]
_WEB: list[dict[str, list[str]]] = [{"WebChatKey": []}, {}]  # {}: no key when WEB_CHAT_KEY is unset

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Suara",
        "version": _version(),
        "description": "Ask the knowledge base by text or by voice. Answers are grounded in the"
        " operator's documents, cite their sources, and remember each conversation"
        " (X-Conversation-Id). /v1 is the API for programs (API_KEYS); /web serves the web"
        " chat page (WEB_CHAT, WEB_CHAT_KEY).",
    },
    "paths": {
        "/v1/chat": _operation("Answer a text message", _CHAT_BODY, _API, audio=False),
        "/v1/audio": _operation("Answer a spoken question", _AUDIO_BODY, _API, audio=True),
        "/web/chat": _operation("The web chat: a text message", _CHAT_BODY, _WEB, audio=False),
        "/web/audio": _operation("The web chat: a voice note", _AUDIO_BODY, _WEB, audio=True),
        "/openapi.json": {
            "get": {
                "summary": "This description",
                "responses": {"200": {"description": "OpenAPI 3.1 JSON."}},
            }
        },
        "/": {
            "get": {
                "summary": "The web chat page (404 with WEB_CHAT=false)",
                "responses": {
                    "200": {"description": "HTML.", "content": {"text/html": {}}},
                    "404": {"description": "The web chat is off."},
                },
            }
        },
    },
    "components": {
        "securitySchemes": {
            "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            "WebChatKey": {"type": "apiKey", "in": "header", "name": "X-Web-Chat-Key"},
        },
        "parameters": {
            "ConversationId": {
                "name": "X-Conversation-Id",
                "in": "header",
                "required": False,
                "description": "The conversation: its memory and the order of its answers."
                " Without it, each request starts a new conversation.",
                "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,64}$"},
            }
        },
        "schemas": {
            "ChatRequest": {
                "type": "object",
                "required": ["message"],
                "properties": {
                    "message": {"type": "string", "minLength": 1, "description": "The question."}
                },
            },
            "Answer": {
                "type": "object",
                "required": [
                    "conversation_id",
                    "answer",
                    "declined",
                    "language",
                    "emotion",
                    "sources",
                    "transcript",
                    "voice",
                    "exec_time",
                ],
                "properties": {
                    "conversation_id": {"type": "string"},
                    "answer": {
                        "type": "string",
                        "description": "Plain text with [n] citations of `sources`.",
                    },
                    "declined": {
                        "type": "boolean",
                        "description": "The documents do not cover the question.",
                    },
                    "language": {"type": ["string", "null"], "examples": ["en", "id"]},
                    "emotion": {"oneOf": [_ref("Emotion"), {"type": "null"}]},
                    "sources": {"type": "array", "items": _ref("Source")},
                    "transcript": {
                        "type": ["string", "null"],
                        "description": "What was heard (audio only).",
                    },
                    "voice": {"oneOf": [_ref("Voice"), {"type": "null"}]},
                    "exec_time": {
                        "type": "object",
                        "description": "Milliseconds per stage (download, transcode, stt,"
                        " emotion, retrieve, generate, tts) and `total`.",
                        "additionalProperties": {"type": "number"},
                        "required": ["total"],
                    },
                },
            },
            "Source": {
                "type": "object",
                "required": ["title", "section", "source", "url", "score"],
                "properties": {
                    "title": {"type": "string"},
                    "section": {"type": "string"},
                    "source": {"type": "string", "description": "A path or a URL."},
                    "url": {"type": ["string", "null"], "description": "Set for web pages."},
                    "score": {"type": "number"},
                },
            },
            "Emotion": {
                "type": "object",
                "required": ["label", "score"],
                "properties": {
                    "label": {"enum": ["neutral", "happy", "sad", "angry", "fearful", "surprised"]},
                    "score": {"type": "number"},
                },
            },
            "Voice": {
                "type": "object",
                "description": "The spoken reply; null when text-to-speech is off or failed.",
                "required": ["mime_type", "duration", "data"],
                "properties": {
                    "mime_type": {"type": "string", "examples": ["audio/ogg"]},
                    "duration": {"type": "number", "description": "Seconds."},
                    "data": {"type": "string", "contentEncoding": "base64"},
                },
            },
            "Error": {
                "type": "object",
                "required": ["error", "message"],
                "properties": {
                    "error": {
                        "type": "string",
                        "description": "A stable code, e.g. unauthorized, unusable_audio.",
                    },
                    "message": {"type": "string", "description": "For people."},
                    "reason": {
                        "type": "string",
                        "description": "The pipeline's fault, e.g. SilentAudio (422, 503).",
                    },
                    "conversation_id": {"type": "string"},
                    "language": {"type": ["string", "null"]},
                    "retry_after_s": {
                        "type": "integer",
                        "description": "Seconds until the next question is allowed (429).",
                    },
                },
            },
        },
    },
}


async def openapi(request: web.Request) -> web.Response:
    """GET /openapi.json."""
    return web.json_response(OPENAPI)


def schema_routes() -> list[web.RouteDef]:
    """The route of the description; served whether or not the API is on."""
    return [web.get("/openapi.json", openapi)]
