"""Chat completions request bodies (Azure OpenAI 2024-10-21), validated the way the service does.

Only what the simulated answer depends on is kept; everything else is checked for shape and dropped.
Errors use OpenAI's messages and `param` paths, so a proxy that mangles a request fails recognisably.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from .dataplane_errors import DataPlaneError, invalid_request

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
_ROLES_WITHOUT_CONTENT = frozenset({"assistant"})  # an assistant turn may carry only tool_calls
_TOOL_CHOICE_MODES = ("none", "auto", "required")
_RESPONSE_FORMATS = ("text", "json_object", "json_schema")
_IMAGE_DETAILS = ("auto", "low", "high")
# Images only in user turns, refusals only in assistant turns; every other role takes text alone.
_PART_TYPES = {"user": ("text", "image_url"), "assistant": ("text", "refusal")}
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_DATA_URL = re.compile(r"^data:(?P<mime>[A-Za-z0-9.+-]+/[A-Za-z0-9.+-]+);base64,(?P<data>.*)$", re.DOTALL)


@dataclass(frozen=True)
class ImageInput:
    """An image part, reduced to what the answer reports about it (decoded bytes are not kept)."""

    sha256: str | None  # of the decoded bytes of a data URL; None for an http(s) URL
    size: int
    mime: str | None
    url: str | None  # only for http(s) URLs, which the simulator never downloads

    def describe(self) -> str:
        if self.sha256 is None:
            return f"[image url={self.url}]"
        return f"[image sha256={self.sha256[:16]} bytes={self.size} type={self.mime}]"


@dataclass(frozen=True)
class ChatMessage:
    role: str
    texts: tuple[str, ...]
    images: tuple[ImageInput, ...] = ()

    @property
    def text(self) -> str:
        return " ".join(self.texts)


@dataclass(frozen=True)
class ChatRequest:
    messages: tuple[ChatMessage, ...]
    tool_names: tuple[str, ...] = ()
    tools_disabled: bool = False  # tool_choice "none"
    forced_tool: str | None = None  # the function tool_choice names
    json_mode: bool = False
    max_tokens: int | None = None
    stream: bool = False
    include_usage: bool = False

    @property
    def last_user_message(self) -> ChatMessage | None:
        return next((message for message in reversed(self.messages) if message.role == "user"), None)

    @property
    def calls_a_tool(self) -> bool:
        return bool(self.tool_names) and not self.tools_disabled

    @property
    def tool_to_call(self) -> str:
        return self.forced_tool or self.tool_names[0]


def _type_name(value: object) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array"}
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "an object"
    return names.get(type(value), type(value).__name__)


def _wrong_type(param: str, expected: str, value: object) -> DataPlaneError:
    return invalid_request(
        f"Invalid type for '{param}': expected {expected}, but got {_type_name(value)} instead.", param
    )


def _missing(param: str) -> DataPlaneError:
    return invalid_request(f"Missing required parameter: '{param}'.", param)


def _unsupported(param: str, value: object, supported: tuple[str, ...]) -> DataPlaneError:
    listed = ", ".join(f"'{item}'" for item in supported)
    return invalid_request(f"Invalid value: '{value}'. Supported values are: {listed}.", param)


def parse_chat_request(raw: bytes) -> ChatRequest:
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise invalid_request(
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your "
            "HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)",
            None,
        ) from None
    if not isinstance(body, dict):
        raise invalid_request("The request body must be a JSON object.", None)
    messages = _messages(body)
    tool_names = _tools(body.get("tools"))
    stream = _optional_bool(body, "stream") or False
    tool_choice = _tool_choice(body.get("tool_choice"), tool_names)
    return ChatRequest(
        messages=messages,
        tool_names=tool_names,
        tools_disabled=tool_choice == "none",
        forced_tool=None if tool_choice in (None, *_TOOL_CHOICE_MODES) else tool_choice,
        json_mode=_response_format(body.get("response_format")) != "text",
        max_tokens=_max_tokens(body),
        stream=stream,
        include_usage=_include_usage(body.get("stream_options"), stream),
    )


def _messages(body: dict[str, Any]) -> tuple[ChatMessage, ...]:
    raw = body.get("messages")
    if raw is None:
        raise _missing("messages")
    if not isinstance(raw, list):
        raise _wrong_type("messages", "an array", raw)
    if not raw:
        raise invalid_request(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
            "messages",
        )
    answered_calls: set[str] = set()  # tool_call ids of earlier assistant turns
    messages = []
    for index, item in enumerate(raw):
        where = f"messages[{index}]"
        if not isinstance(item, dict):
            raise _wrong_type(where, "an object", item)
        message = _message(item, where)
        if message.role == "assistant":
            answered_calls |= _tool_call_ids(item.get("tool_calls"), where)
        if message.role == "tool":
            call_id = item.get("tool_call_id")
            if not isinstance(call_id, str) or not call_id:
                raise _missing(f"{where}.tool_call_id")
            if call_id not in answered_calls:
                raise invalid_request(
                    "Invalid parameter: messages with role 'tool' must be a response to a preceeding message "
                    "with 'tool_calls'.",
                    f"{where}.role",
                )
        messages.append(message)
    return tuple(messages)


def _message(item: dict[str, Any], where: str) -> ChatMessage:
    role = item.get("role")
    if role is None:
        raise _missing(f"{where}.role")
    if role not in ROLES:
        raise _unsupported(f"{where}.role", role, ROLES)
    content = item.get("content")
    if content is None:
        if role not in _ROLES_WITHOUT_CONTENT:
            raise _wrong_type(f"{where}.content", "one of a string or array of objects", content)
        return ChatMessage(role, ())
    if isinstance(content, str):
        return ChatMessage(role, (content,))
    if not isinstance(content, list):
        raise _wrong_type(f"{where}.content", "one of a string or array of objects", content)
    texts: list[str] = []
    images: list[ImageInput] = []
    for index, part in enumerate(content):
        part_where = f"{where}.content[{index}]"
        if not isinstance(part, dict):
            raise _wrong_type(part_where, "an object", part)
        kind = part.get("type")
        allowed = _PART_TYPES.get(role, ("text",))
        if kind not in allowed:
            raise _unsupported(f"{part_where}.type", kind, allowed)
        if kind == "image_url":
            images.append(_image(part.get("image_url"), part_where))
            continue
        text = part.get(kind)
        if not isinstance(text, str):
            raise _wrong_type(f"{part_where}.{kind}", "a string", text)
        texts.append(text)
    return ChatMessage(role, tuple(texts), tuple(images))


def _image(raw: object, where: str) -> ImageInput:
    if not isinstance(raw, dict):
        raise _wrong_type(f"{where}.image_url", "an object", raw)
    url = raw.get("url")
    if not isinstance(url, str):
        raise _wrong_type(f"{where}.image_url.url", "a string", url)
    detail = raw.get("detail")
    if detail is not None and detail not in _IMAGE_DETAILS:
        raise _unsupported(f"{where}.image_url.detail", detail, _IMAGE_DETAILS)
    if url.startswith(("http://", "https://")):
        return ImageInput(sha256=None, size=0, mime=None, url=url)
    match = _DATA_URL.match(url)
    if match is None or not match["mime"].startswith("image/"):
        raise invalid_request(
            "Invalid image URL: expected a base64 data URL ('data:image/<type>;base64,...') or an http(s) URL.",
            "messages",
        )
    try:
        data = base64.b64decode(match["data"], validate=True)
    except (binascii.Error, ValueError):
        data = b""
    if not data:
        raise invalid_request("Invalid image data: the data URL does not hold valid base64.", "messages")
    return ImageInput(sha256=hashlib.sha256(data).hexdigest(), size=len(data), mime=match["mime"], url=None)


def _tool_call_ids(raw: object, where: str) -> set[str]:
    if raw is None:
        return set()
    if not isinstance(raw, list):
        raise _wrong_type(f"{where}.tool_calls", "an array", raw)
    ids = set()
    for index, call in enumerate(raw):
        call_where = f"{where}.tool_calls[{index}]"
        if not isinstance(call, dict):
            raise _wrong_type(call_where, "an object", call)
        for key in ("id", "type"):
            if not isinstance(call.get(key), str):
                raise _missing(f"{call_where}.{key}")
        function = call.get("function")
        if not isinstance(function, dict):
            raise _missing(f"{call_where}.function")
        for key in ("name", "arguments"):
            if not isinstance(function.get(key), str):
                raise _missing(f"{call_where}.function.{key}")
        ids.add(call["id"])
    return ids


def _tools(raw: object) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise _wrong_type("tools", "an array", raw)
    if not raw:
        raise invalid_request(
            "Invalid 'tools': empty array. Expected an array with minimum length 1, but got an empty array instead.",
            "tools",
        )
    names = []
    for index, tool in enumerate(raw):
        where = f"tools[{index}]"
        if not isinstance(tool, dict):
            raise _wrong_type(where, "an object", tool)
        if tool.get("type") != "function":
            raise _unsupported(f"{where}.type", tool.get("type"), ("function",))
        function = tool.get("function")
        if not isinstance(function, dict):
            raise _missing(f"{where}.function")
        name = function.get("name")
        if not isinstance(name, str) or not _TOOL_NAME.match(name):
            raise invalid_request(
                f"Invalid '{where}.function.name': string does not match pattern. Expected a string that matches "
                "the pattern '^[a-zA-Z0-9_-]{1,64}$'.",
                f"{where}.function.name",
            )
        names.append(name)
    return tuple(names)


def _tool_choice(raw: object, tool_names: tuple[str, ...]) -> str | None:
    """One of the modes "none", "auto", "required", or the name of the function it forces."""
    if raw is None:
        return None
    if not tool_names:
        raise invalid_request(
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.", "tool_choice"
        )
    if isinstance(raw, str):
        if raw not in _TOOL_CHOICE_MODES:
            raise _unsupported("tool_choice", raw, _TOOL_CHOICE_MODES)
        return raw
    function = raw.get("function") if isinstance(raw, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(raw, dict) or raw.get("type") != "function" or not isinstance(name, str):
        raise invalid_request(
            "Invalid value for 'tool_choice': expected 'none', 'auto', 'required' or "
            '{"type": "function", "function": {"name": "..."}}.',
            "tool_choice",
        )
    if name not in tool_names:
        raise invalid_request(
            f"Invalid value for 'tool_choice': no function named '{name}' was specified in the 'tools' parameter.",
            "tool_choice",
        )
    return name


def _response_format(raw: object) -> str:
    if raw is None:
        return "text"
    if not isinstance(raw, dict):
        raise _wrong_type("response_format", "an object", raw)
    kind = raw.get("type")
    if kind not in _RESPONSE_FORMATS:
        raise _unsupported("response_format.type", kind, _RESPONSE_FORMATS)
    return str(kind)


def _max_tokens(body: dict[str, Any]) -> int | None:
    limits = []
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool):
            raise _wrong_type(key, "an integer", value)
        if value < 1:
            raise invalid_request(
                f"Invalid '{key}': integer below minimum value. Expected a value >= 1, but got {value} instead.", key
            )
        limits.append(value)
    return min(limits) if limits else None


def _optional_bool(body: dict[str, Any], key: str) -> bool | None:
    value = body.get(key)
    if value is not None and not isinstance(value, bool):
        raise _wrong_type(key, "a boolean", value)
    return value


def _include_usage(raw: object, stream: bool) -> bool:
    if raw is None:
        return False
    if not stream:
        raise invalid_request(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.", "stream_options"
        )
    if not isinstance(raw, dict):
        raise _wrong_type("stream_options", "an object", raw)
    return _optional_bool(raw, "include_usage") or False
