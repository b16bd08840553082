#!/usr/bin/env python3
"""Write the chat-template and streamed-text fixtures (``tests/fixtures/chat/``).

Dev-only helper; the Rust tests (``tests/chat.rs``) only read what it wrote.
Runs offline: the chat templates of real model families are kept in this file
as text (as their ``tokenizer_config.json`` / ``chat_template.jinja`` hold
them), and every expected prompt is ``transformers``' own rendering:
``PreTrainedTokenizerFast(tokenizer_file=tests/fixtures/decoders/llama/
tokenizer.json, <special tokens>, chat_template=...).apply_chat_template(
messages, tokenize=False, add_generation_prompt=..., **extra)``.

Writes:

* ``tests/fixtures/chat/templates.json``: ``{"transformers": version,
  "templates": {NAME: {"template", "special_tokens": {bos_token, ...}}},
  "cases": [{"template", "messages": [{role, content}],
  "add_generation_prompt", "extra": {kwargs}, "expected" (the prompt) or
  "error" (the message ``raise_exception`` raised)}]}``;
* ``tests/fixtures/chat/folders.json``: ``{"cases": [{"folder" (relative to
  tests/fixtures), "messages", "add_generation_prompt", "expected"}]}`` for the
  committed decoder folders that now carry a chat template, rendered through
  ``AutoTokenizer.from_pretrained(folder)``, with its ids
  (``apply_chat_template(..., tokenize=True)``);
* ``tests/fixtures/decoders/llama/tokenizer_config.json`` (the Mistral v0.3
  template, ``<s>``/``</s>``) and ``tests/fixtures/decoders/gpt2/
  tokenizer_config.json`` (ChatML as Qwen2.5 has it, ``<|endoftext|>``);
* ``tests/fixtures/chat/spm-byte-fallback/tokenizer.json``: a small
  SentencePiece-style BPE (Llama 2 / Gemma layout: ``▁`` word starts,
  ``<0xNN>`` byte fallback, a decoder that strips the first space) learnt on
  ASCII text, so emoji and CJK fall back to bytes; ``stream_texts.json``: the
  texts the streamed-detokenization test encodes.

Usage: ``/tmp/tvenv/bin/python scripts/chat_template_fixtures.py`` (transformers
5, tokenizers, jinja2 >= 3.1.6).  Deterministic: a re-run gives the same files.
"""

import json
import os
import sys
import tempfile
import warnings
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
warnings.filterwarnings("ignore")

import jinja2  # noqa: E402
import transformers  # noqa: E402
from tokenizers import Tokenizer, decoders, models, normalizers, trainers  # noqa: E402
from transformers import AutoTokenizer, PreTrainedTokenizerFast  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
OUT = FIXTURES / "chat"

# --- Templates, as the models' tokenizer_config.json files hold them ---------------------------

CHATML_QWEN25 = r"""{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
"""

LLAMA31 = r"""{{- bos_token }}
{%- if custom_tools is defined %}
    {%- set tools = custom_tools %}
{%- endif %}
{%- if not tools_in_user_message is defined %}
    {%- set tools_in_user_message = true %}
{%- endif %}
{%- if not date_string is defined %}
    {%- set date_string = "26 Jul 2024" %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}

{#- This block extracts the system message, so we can slot it into the right place. #}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}

{#- System message + builtin tools #}
{{- "<|start_header_id|>system<|end_header_id|>\n\n" }}
{%- if builtin_tools is defined or tools is not none %}
    {{- "Environment: ipython\n" }}
{%- endif %}
{%- if builtin_tools is defined %}
    {{- "Tools: " + builtin_tools | reject('equalto', 'code_interpreter') | join(", ") + "\n\n"}}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\n" }}
{{- "Today Date: " + date_string + "\n\n" }}
{%- if tools is not none and not tools_in_user_message %}
    {{- "You have access to the following functions. To call a function, please respond with JSON for a function call." }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\n\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
{%- endif %}
{{- system_message }}
{{- "<|eot_id|>" }}

{#- Custom tools are passed in a user message with some extra guidance #}
{%- if tools_in_user_message and not tools is none %}
    {#- Extract the first user message so we can plug it in here #}
    {%- if messages | length != 0 %}
        {%- set first_user_message = messages[0]['content']|trim %}
        {%- set messages = messages[1:] %}
    {%- else %}
        {{- raise_exception("Cannot put tools in the first user message when there's no first user message!") }}
{%- endif %}
    {{- '<|start_header_id|>user<|end_header_id|>\n\n' -}}
    {{- "Given the following functions, please respond with a JSON for a function call " }}
    {{- "with its proper arguments that best answers the given prompt.\n\n" }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\n\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
    {{- first_user_message + "<|eot_id|>"}}
{%- endif %}

{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- if not message.tool_calls|length == 1 %}
            {{- raise_exception("This model only supports single tool-calls at once!") }}
        {%- endif %}
        {%- set tool_call = message.tool_calls[0].function %}
        {%- if builtin_tools is defined and tool_call.name in builtin_tools %}
            {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
            {{- "<|python_tag|>" + tool_call.name + ".call(" }}
            {%- for arg_name, arg_val in tool_call.arguments | items %}
                {{- arg_name + '="' + arg_val + '"' }}
                {%- if not loop.last %}
                    {{- ", " }}
                {%- endif %}
                {%- endfor %}
            {{- ")" }}
        {%- else  %}
            {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
            {{- '{"name": "' + tool_call.name + '", ' }}
            {{- '"parameters": ' }}
            {{- tool_call.arguments | tojson }}
            {{- "}" }}
        {%- endif %}
        {%- if builtin_tools is defined %}
            {#- This means we're in ipython mode #}
            {{- "<|eom_id|>" }}
        {%- else %}
            {{- "<|eot_id|>" }}
        {%- endif %}
    {%- elif message.role == "tool" or message.role == "ipython" %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\n\n" }}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %}
"""

# Llama 3.2 differs from 3.1 where the date comes from: `strftime_now` (the fixture passes
# `date_string` so the expected text does not depend on the day it was made).
LLAMA32 = LLAMA31.replace(
    """{%- if not date_string is defined %}
    {%- set date_string = "26 Jul 2024" %}
{%- endif %}""",
    """{%- if not date_string is defined %}
    {%- if strftime_now is defined %}
        {%- set date_string = strftime_now("%d %b %Y") %}
    {%- else %}
        {%- set date_string = "26 Jul 2024" %}
    {%- endif %}
{%- endif %}""",
)
assert LLAMA32 != LLAMA31

GEMMA2 = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}"
    "{% endif %}{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\\n'}}{% endif %}"
)

GEMMA3 = r"""{{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
    {%- if messages[0]['content'] is string -%}
        {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}
    {%- else -%}
        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}
    {%- endif -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = "" -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif -%}
    {%- if (message['role'] == 'assistant') -%}
        {%- set role = "model" -%}
    {%- else -%}
        {%- set role = message['role'] -%}
    {%- endif -%}
    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else "") }}
    {%- if message['content'] is string -%}
        {{ message['content'] | trim }}
    {%- elif message['content'] is iterable -%}
        {%- for item in message['content'] -%}
            {%- if item['type'] == 'image' -%}
                {{ '<start_of_image>' }}
            {%- elif item['type'] == 'text' -%}
                {{ item['text'] | trim }}
            {%- endif -%}
        {%- endfor -%}
    {%- else -%}
        {{ raise_exception("Invalid content type") }}
    {%- endif -%}
    {{ '<end_of_turn>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{'<start_of_turn>model\n'}}
{%- endif -%}
"""

PHI3 = (
    "{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\\n' + message['content'] + "
    "'<|end|>\\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\\n' + message['content'] + '<|end|>\\n'}}"
    "{% elif message['role'] == 'assistant' %}{{'<|assistant|>\\n' + message['content'] + '<|end|>\\n'}}"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% else %}{{ eos_token }}"
    "{% endif %}"
)

MISTRAL_V03 = r"""{%- if messages[0]["role"] == "system" %}
    {%- set system_message = messages[0]["content"] %}
    {%- set loop_messages = messages[1:] %}
{%- else %}
    {%- set loop_messages = messages %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}
{%- set user_messages = loop_messages | selectattr("role", "equalto", "user") | list %}

{#- This block checks for alternating user/assistant messages, skipping tool calling messages #}
{%- set ns = namespace() %}
{%- set ns.index = 0 %}
{%- for message in loop_messages %}
    {%- if not (message.role == "tool" or message.role == "tool_results" or (message.tool_calls is defined and message.tool_calls is not none)) %}
        {%- if (message["role"] == "user") != (ns.index % 2 == 0) %}
            {{- raise_exception("After the optional system message, conversation roles must alternate user/assistant/user/assistant/...") }}
        {%- endif %}
        {%- set ns.index = ns.index + 1 %}
    {%- endif %}
{%- endfor %}

{{- bos_token }}
{%- for message in loop_messages %}
    {%- if message["role"] == "user" %}
        {%- if tools is not none and (message == user_messages[-1]) %}
            {{- "[AVAILABLE_TOOLS] [" }}
            {%- for tool in tools %}
                {%- set tool = tool.function %}
                {{- '{"type": "function", "function": {' }}
                {%- for key, val in tool.items() if key != "return" %}
                    {%- if val is string %}
                        {{- '"' + key + '": "' + val + '"' }}
                    {%- else %}
                        {{- '"' + key + '": ' + val|tojson }}
                    {%- endif %}
                    {%- if not loop.last %}
                        {{- ", " }}
                    {%- endif %}
                {%- endfor %}
                {{- "}}" }}
                {%- if not loop.last %}
                    {{- ", " }}
                {%- else %}
                    {{- "]" }}
                {%- endif %}
            {%- endfor %}
            {{- "[/AVAILABLE_TOOLS]" }}
            {%- endif %}
        {%- if loop.last and system_message is defined %}
            {{- "[INST] " + system_message + "\n\n" + message["content"] + "[/INST]" }}
        {%- else %}
            {{- "[INST] " + message["content"] + "[/INST]" }}
        {%- endif %}
    {%- elif message.tool_calls is defined and message.tool_calls is not none %}
        {{- "[TOOL_CALLS] [" }}
        {%- for tool_call in message.tool_calls %}
            {%- set out = tool_call.function|tojson %}
            {{- out[:-1] }}
            {%- if not tool_call.id is defined or tool_call.id|length != 9 %}
                {{- raise_exception("Tool call IDs should be alphanumeric strings with length 9!") }}
            {%- endif %}
            {{- ', "id": "' + tool_call.id + '"}' }}
            {%- if not loop.last %}
                {{- ", " }}
            {%- else %}
                {{- "]" + eos_token }}
            {%- endif %}
        {%- endfor %}
    {%- elif message["role"] == "assistant" %}
        {{- " " + message["content"]|trim + eos_token}}
    {%- elif message["role"] == "tool_results" or message["role"] == "tool" %}
        {%- if message.content is defined and message.content.content is defined %}
            {%- set content = message.content.content %}
        {%- else %}
            {%- set content = message.content %}
        {%- endif %}
        {{- '[TOOL_RESULTS] {"content": ' + content|string + ", " }}
        {%- if not message.tool_call_id is defined or message.tool_call_id|length != 9 %}
            {{- raise_exception("Tool call IDs should be alphanumeric strings with length 9!") }}
        {%- endif %}
        {{- '"call_id": "' + message.tool_call_id + '"}[/TOOL_RESULTS]' }}
    {%- else %}
        {{- raise_exception("Only user and assistant roles are supported, with the exception of an initial optional system message!") }}
    {%- endif %}
{%- endfor %}
"""

QWEN3 = r"""{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0].role == 'system' %}
        {{- messages[0].content + '\n\n' }}
    {%- endif %}
    {{- "# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0].role == 'system' %}
        {{- '<|im_start|>system\n' + messages[0].content + '<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}
{%- for message in messages[::-1] %}
    {%- set index = (messages|length - 1) - loop.index0 %}
    {%- if ns.multi_step_tool and message.role == "user" and message.content is string and not(message.content.startswith('<tool_response>') and message.content.endswith('</tool_response>')) %}
        {%- set ns.multi_step_tool = false %}
        {%- set ns.last_query_index = index %}
    {%- endif %}
{%- endfor %}
{%- for message in messages %}
    {%- if message.content is string %}
        {%- set content = message.content %}
    {%- else %}
        {%- set content = '' %}
    {%- endif %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) %}
        {{- '<|im_start|>' + message.role + '\n' + content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {%- set reasoning_content = '' %}
        {%- if message.reasoning_content is string %}
            {%- set reasoning_content = message.reasoning_content %}
        {%- else %}
            {%- if '</think>' in content %}
                {%- set reasoning_content = content.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n') %}
                {%- set content = content.split('</think>')[-1].lstrip('\n') %}
            {%- endif %}
        {%- endif %}
        {%- if loop.index0 > ns.last_query_index %}
            {%- if loop.last or (not loop.last and reasoning_content) %}
                {{- '<|im_start|>' + message.role + '\n<think>\n' + reasoning_content.strip('\n') + '\n</think>\n\n' + content.lstrip('\n') }}
            {%- else %}
                {{- '<|im_start|>' + message.role + '\n' + content }}
            {%- endif %}
        {%- else %}
            {{- '<|im_start|>' + message.role + '\n' + content }}
        {%- endif %}
        {%- if message.tool_calls %}
            {%- for tool_call in message.tool_calls %}
                {%- if (loop.first and content) or (not loop.first) %}
                    {{- '\n' }}
                {%- endif %}
                {%- if tool_call.function %}
                    {%- set tool_call = tool_call.function %}
                {%- endif %}
                {{- '<tool_call>\n{"name": "' }}
                {{- tool_call.name }}
                {{- '", "arguments": ' }}
                {%- if tool_call.arguments is string %}
                    {{- tool_call.arguments }}
                {%- else %}
                    {{- tool_call.arguments | tojson }}
                {%- endif %}
                {{- '}\n</tool_call>' }}
            {%- endfor %}
        {%- endif %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if loop.first or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
    {%- if enable_thinking is defined and enable_thinking is false %}
        {{- '<think>\n\n</think>\n\n' }}
    {%- endif %}
{%- endif %}"""

# Zephyr (HuggingFaceH4/zephyr-7b-beta): block tags on their own lines, no `-`, so the output
# depends on trim_blocks.
ZEPHYR = (
    "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + "
    "eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}"
    "\n{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n"
    "{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}"
)

# Not a model's: the Python-isms and whitespace control templates in the wild lean on, indented
# block tags without `-` (lstrip_blocks), loop controls, pycompat methods, tojson, namespace.
PYTHONISMS = r"""{% set ns = namespace(n=0, roles=[]) %}
  {% for message in messages %}
    {% if loop.index0 > 2 %}{% break %}{% endif %}
    {% if message.role == 'system' %}
      {% continue %}
    {% endif %}
    {% set ns.n = ns.n + 1 %}
    [{{ ns.n }}] {{ message.role.upper() }}: {{ message.content.strip().replace('  ', ' ') }}
    {% for key, value in message.items() %}{{ key }}={{ value | length }};{% endfor %}

    words={{ message.content.split() | length }} first={{ message.content.lstrip().split(' ')[0] }}
    {% if message.content.strip().startswith('What') or message.content.endswith('
') %}question{% endif %}

  {% endfor %}
{{ messages | tojson }}
{{ messages[:1] | tojson(indent=2) }}
{{ messages[::-1] | map(attribute='role') | join(',') }}|{{ bos_token }}|{{ eos_token }}|{{ 'x' ~ 3 }}
{%- if add_generation_prompt %}
<assistant>
{% endif %}
"""

TEMPLATES = {
    "zephyr": (ZEPHYR, {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}),
    "pythonisms": (PYTHONISMS, {"bos_token": "<s>", "eos_token": "</s>"}),
    "chatml-qwen2.5": (CHATML_QWEN25, {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}),
    "llama3.1": (LLAMA31, {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}),
    "llama3.2": (LLAMA32, {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}),
    "gemma2": (GEMMA2, {"bos_token": "<bos>", "eos_token": "<eos>", "unk_token": "<unk>", "pad_token": "<pad>"}),
    "gemma3": (GEMMA3, {"bos_token": "<bos>", "eos_token": "<eos>", "unk_token": "<unk>", "pad_token": "<pad>"}),
    "phi3": (PHI3, {"bos_token": "<s>", "eos_token": "<|endoftext|>", "unk_token": "<unk>", "pad_token": "<|endoftext|>"}),
    "mistral-v0.3": (MISTRAL_V03, {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}),
    "qwen3": (QWEN3, {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}),
}


def msg(role, content):
    return {"role": role, "content": content}


SYSTEM = msg("system", "  You are a terse assistant.\nAnswer in one line.  ")
USER = msg("user", "What is 2 + 2? Répondez en français 🙂, 谢谢.")
ASSISTANT = msg("assistant", " 4 — quatre. ")
USER2 = msg("user", "And {{ 3 + 3 }}? <b>bold</b> \"quoted\" \\ back\n")

CONVERSATIONS = {
    "user": [USER],
    "system-user": [SYSTEM, USER],
    "multi-turn": [USER, ASSISTANT, USER2],
    "system-multi-turn": [SYSTEM, USER, ASSISTANT, USER2],
    "ends-with-assistant": [SYSTEM, USER, ASSISTANT],
    "bad-order": [USER, msg("user", "again")],
    "starts-with-assistant": [ASSISTANT, USER],
}

# A tool schema, keys in sorted order at every level (the Rust side reads `extra` through
# serde_json, whose maps are sorted).
TOOLS = [
    {
        "function": {
            "description": "The weather in a city, in °C.",
            "name": "get_weather",
            "parameters": {
                "properties": {"city": {"description": "The city, e.g. Paris", "type": "string"}},
                "required": ["city"],
                "type": "object",
            },
        },
        "type": "function",
    }
]

EXTRA_CASES = [
    # (template, conversation, add_generation_prompt, extra)
    ("llama3.2", "system-user", True, {"date_string": "02 Dec 2026"}),
    ("llama3.2", "multi-turn", False, {"date_string": "1 Jan 2025"}),
    ("llama3.1", "system-user", True, {"tools": TOOLS}),
    ("llama3.1", "system-user", True, {"tools": TOOLS, "tools_in_user_message": False}),
    ("chatml-qwen2.5", "system-multi-turn", True, {"tools": TOOLS}),
    ("mistral-v0.3", "multi-turn", False, {"tools": TOOLS}),
    ("qwen3", "system-user", True, {"enable_thinking": False}),
    ("qwen3", "qwen3-thinking", True, {}),
    ("qwen3", "qwen3-thinking", False, {}),
    ("qwen3", "qwen3-tool-response", True, {"tools": TOOLS}),
    ("chatml-qwen2.5", "qwen3-tool-response", True, {}),
]

# Short enough for the tiny decoders' positions (`torchless generate --system ... --chat ...`).
CONVERSATIONS["short"] = [msg("system", "Be brief."), msg("user", "Hi there")]
CONVERSATIONS["qwen3-thinking"] = [
    USER,
    msg("assistant", "<think>\nThe user asks 2+2.\n</think>\n\n4"),
    USER2,
    msg("assistant", "<think>\nSix.\n</think>\n\nSix."),
]
CONVERSATIONS["qwen3-tool-response"] = [
    USER,
    msg("assistant", "Let me check."),
    msg("tool", '{"temperature": 21}'),
    msg("tool", '{"humidity": 40}'),
]


def tokenizer_for(template, special):
    return PreTrainedTokenizerFast(
        tokenizer_file=str(FIXTURES / "decoders" / "llama" / "tokenizer.json"),
        chat_template=template,
        **special,
    )


def render(tok, messages, add_generation_prompt, extra):
    try:
        return {"expected": tok.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=add_generation_prompt, **extra
        )}
    except jinja2.exceptions.TemplateError as e:
        return {"error": str(e)}


def chat_cases():
    cases = []
    for name, (template, special) in TEMPLATES.items():
        tok = tokenizer_for(template, special)
        for conv in ["user", "system-user", "multi-turn", "system-multi-turn", "ends-with-assistant",
                     "bad-order", "starts-with-assistant"]:
            for agp in (True, False):
                extra = {"date_string": "26 Jul 2024"} if name == "llama3.2" else {}
                cases.append({"template": name, "conversation": conv, "messages": CONVERSATIONS[conv],
                              "add_generation_prompt": agp, "extra": extra,
                              **render(tok, CONVERSATIONS[conv], agp, extra)})
    for name, conv, agp, extra in EXTRA_CASES:
        tok = tokenizer_for(*TEMPLATES[name])
        cases.append({"template": name, "conversation": conv, "messages": CONVERSATIONS[conv],
                      "add_generation_prompt": agp, "extra": extra,
                      **render(tok, CONVERSATIONS[conv], agp, extra)})
    errors = [c for c in cases if "error" in c]
    # The templates that check roles must refuse these; the rest must render everything.
    assert {c["template"] for c in errors} == {"gemma2", "gemma3", "mistral-v0.3"}, errors
    assert all(c["conversation"] in ("bad-order", "starts-with-assistant", "system-user",
                                     "system-multi-turn", "ends-with-assistant") for c in errors)
    return cases


# --- Decoder folders that carry a chat template -------------------------------------------------

FOLDER_TEMPLATES = {
    # folder: (template name, special tokens as tokenizer_config.json stores them)
    "decoders/llama": ("mistral-v0.3", {
        "bos_token": {"__type": "AddedToken", "content": "<s>", "lstrip": False, "normalized": False,
                      "rstrip": False, "single_word": False, "special": True},
        "eos_token": "</s>",
    }),
    "decoders/gpt2": ("chatml-qwen2.5", {"eos_token": "<|endoftext|>", "bos_token": "<|endoftext|>"}),
}


def write_folder_configs():
    cases = []
    for folder, (name, special) in FOLDER_TEMPLATES.items():
        config = {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "clean_up_tokenization_spaces": False,
            **special,
            "chat_template": TEMPLATES[name][0],
        }
        path = FIXTURES / folder / "tokenizer_config.json"
        path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        tok = AutoTokenizer.from_pretrained(str(FIXTURES / folder))
        for conv, agp in (("system-user", True), ("multi-turn", True), ("ends-with-assistant", False),
                          ("short", True)):
            if name == "mistral-v0.3" and conv == "ends-with-assistant":
                conv = "multi-turn"
            out = tok.apply_chat_template(CONVERSATIONS[conv], tokenize=False, add_generation_prompt=agp)
            # The ids `apply_chat_template(tokenize=True)` gives: the text encoded without adding
            # special tokens (the template writes them).
            ids = tok.apply_chat_template(CONVERSATIONS[conv], tokenize=True, add_generation_prompt=agp,
                                          return_dict=True)["input_ids"]
            assert ids == tok(out, add_special_tokens=False)["input_ids"]
            cases.append({"folder": folder, "template": name, "messages": CONVERSATIONS[conv],
                          "add_generation_prompt": agp, "expected": out, "ids": ids})
    return cases


# --- A SentencePiece-style byte-fallback tokenizer for the streamed-text test -------------------

STREAM_TEXTS = [
    "Hello world",
    "  leading spaces and   inner runs  ",
    "café naïve résumé — déjà vu",
    "emoji 🙂👍🏽 and flags 🇫🇷 mixed in",
    "中文字符和日本語のテキスト",
    "mixed: héllo 世界 🙂 end",
    "line one\nline two\n\ttabbed",
    "🙂",
    " ▁ literal lower-one-eighth block",
]

CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "hello world hello there world of words",
    "leading spaces and inner runs of text",
    "line one line two tabbed mixed end",
    "a cafe is a place where people drink coffee",
    "flags and emoji are mixed in the text",
] * 4


def write_spm_tokenizer():
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence([
        decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)
    ])
    trainer = trainers.BpeTrainer(vocab_size=200, special_tokens=["<unk>", "<s>", "</s>"],
                                  show_progress=False, limit_alphabet=40)
    tok.train_from_iterator(CORPUS, trainer)
    data = json.loads(tok.to_str())
    vocab = data["model"]["vocab"]
    for b in range(256):
        vocab.setdefault(f"<0x{b:02X}>", len(vocab))
    # Llama 2's post-processor: `<s>` before the text.
    data["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                 {"Sequence": {"id": "B", "type_id": 0}}],
        "special_tokens": {"<s>": {"id": "<s>", "ids": [vocab["<s>"]], "tokens": ["<s>"]}},
    }
    text = json.dumps(data, ensure_ascii=False, indent=1)
    tok = Tokenizer.from_str(text)
    # Byte fallback must be exercised: an emoji encodes to <0xNN> pieces.
    assert any(t.startswith("<0x") for t in tok.encode("🙂").tokens), tok.encode("🙂").tokens
    for s in STREAM_TEXTS:
        ids = tok.encode(s).ids
        assert "\ufffd" not in tok.decode(ids, skip_special_tokens=True), s
    folder = OUT / "spm-byte-fallback"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tokenizer.json").write_text(text + "\n", encoding="utf-8")


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    templates = {name: {"template": t, "special_tokens": s} for name, (t, s) in TEMPLATES.items()}
    cases = chat_cases()
    (OUT / "templates.json").write_text(json.dumps(
        {"transformers": transformers.__version__, "templates": templates, "cases": cases},
        indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    folder_cases = write_folder_configs()
    (OUT / "folders.json").write_text(json.dumps({"cases": folder_cases}, indent=1, ensure_ascii=False) + "\n",
                                      encoding="utf-8")
    write_spm_tokenizer()
    (OUT / "stream_texts.json").write_text(json.dumps({"texts": STREAM_TEXTS}, indent=1, ensure_ascii=False)
                                           + "\n", encoding="utf-8")
    print(f"{len(cases)} template cases ({sum('error' in c for c in cases)} errors), "
          f"{len(folder_cases)} folder cases", file=sys.stderr)


if __name__ == "__main__":
    main()
