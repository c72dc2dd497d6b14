"""The simulated model: deterministic answers a test can assert on, and word-count token usage.

The answer echoes the last user message, so a test can tell which request an answer belongs to, and
describes each of its images by a hash of the decoded bytes, so it can tell that an image arrived intact.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

from .chat_request import ChatMessage, ChatRequest

CONTENT_FILTER_TRIGGER = "trigger-content-filter"
TOKENS_PER_IMAGE = 85  # what a low-detail image costs on the real service
_TRIGGER = re.compile(rf"(?<![\w-]){re.escape(CONTENT_FILTER_TRIGGER)}(?![\w-])")
_WORD_WITH_TRAILING_SPACE = re.compile(r"\S+\s*")


@dataclass(frozen=True)
class ToolCall:
    call_id: str
    name: str
    arguments: str  # a JSON document, as the API sends it


@dataclass(frozen=True)
class ChatAnswer:
    content: str | None
    tool_call: ToolCall | None
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def content_pieces(self) -> list[str]:
        """The content as streamed: one piece per word with its following whitespace; joined, the content."""
        content = self.content or ""
        pieces = _WORD_WITH_TRAILING_SPACE.findall(content)
        leading = content[: len(content) - len(content.lstrip())]
        if pieces and leading:
            pieces[0] = leading + pieces[0]
        return pieces or ([content] if content else [])


def count_words(text: str) -> int:
    return len(text.split())


def blocks_prompt(request: ChatRequest) -> bool:
    """The trigger word in the last user message makes the prompt filter refuse the request."""
    last = request.last_user_message
    return last is not None and _TRIGGER.search(last.text) is not None


def answer_chat(request: ChatRequest) -> ChatAnswer:
    last = request.last_user_message or ChatMessage("user", ())
    prompt_tokens = sum(
        count_words(message.text) + TOKENS_PER_IMAGE * len(message.images) for message in request.messages
    )
    if request.calls_a_tool:
        arguments = json.dumps({"echo": last.text})
        call = ToolCall(_call_id(request.tool_to_call, arguments), request.tool_to_call, arguments)
        return ChatAnswer(None, call, "tool_calls", prompt_tokens, max(1, count_words(arguments)))
    if request.json_mode:
        content = json.dumps({"echo": last.text})
    else:
        content = " ".join([f"echo: {last.text}", *(image.describe() for image in last.images)])
    finish_reason = "stop"
    if request.max_tokens is not None and count_words(content) > request.max_tokens:
        content = " ".join(content.split()[: request.max_tokens])
        finish_reason = "length"
    return ChatAnswer(content, None, finish_reason, prompt_tokens, max(1, count_words(content)))


def _call_id(name: str, arguments: str) -> str:
    """Deterministic, so a test can predict it; shaped like the service's `call_` ids."""
    return "call_" + hashlib.sha256(f"{name}\n{arguments}".encode()).hexdigest()[:24]
