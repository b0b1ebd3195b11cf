"""The official anthropic SDK, unchanged except for base_url, against a running agent.

Usage: python anthropic_sdk_check.py BASE_URL
Checks plain and streamed Messages calls on an Anthropic deployment (passed through) and on
OpenAI and Gemini ones (translated), a tool call plain and streamed, and errors the SDK must
raise as its own types. Exits non-zero, naming the check, on the first failure.
"""
import sys

import anthropic

client = anthropic.Anthropic(base_url=sys.argv[1], api_key="sk-not-needed-keyless", max_retries=0)
EXPECTED = "Sluice mock says hello and counts every token"


def check(name, condition, detail=""):
    if not condition:
        print(f"FAILED {name}: {detail}", file=sys.stderr)
        sys.exit(1)
    print(f"ok {name}")


for model in ["claude", "gpt-test", "gemini"]:
    message = client.messages.create(model=model, max_tokens=64, system="Be brief.",
                                     messages=[{"role": "user", "content": "Hello"}])
    text = "".join(block.text for block in message.content if block.type == "text")
    check(f"{model} plain", text == EXPECTED and message.stop_reason == "end_turn", message.model_dump_json())
    check(f"{model} usage", message.usage.output_tokens == 8 and message.usage.input_tokens > 0, str(message.usage))

    with client.messages.stream(model=model, max_tokens=64, messages=[{"role": "user", "content": "Hello"}]) as stream:
        streamed = "".join(stream.text_stream)
        final = stream.get_final_message()
    check(f"{model} streamed", streamed == EXPECTED, streamed)
    check(f"{model} streamed usage", final.usage.output_tokens == 8 and final.stop_reason == "end_turn", final.model_dump_json())

tools = [{"name": "get_weather", "description": "Current weather",
          "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
for model in ["claude-tools", "gpt-tools"]:
    message = client.messages.create(model=model, max_tokens=64, tools=tools, messages=[{"role": "user", "content": "Weather?"}])
    uses = [block for block in message.content if block.type == "tool_use"]
    check(f"{model} tool call", message.stop_reason == "tool_use" and len(uses) == 1 and uses[0].name == "get_weather"
          and uses[0].input == {"city": "Paris"}, message.model_dump_json())
    with client.messages.stream(model=model, max_tokens=64, tools=tools, messages=[{"role": "user", "content": "Weather?"}]) as stream:
        final = stream.get_final_message()
    uses = [block for block in final.content if block.type == "tool_use"]
    check(f"{model} streamed tool call", len(uses) == 1 and uses[0].input == {"city": "Paris"}, final.model_dump_json())

try:
    client.messages.create(model="no-such-model", max_tokens=64, messages=[{"role": "user", "content": "Hello"}])
    check("unknown model raises", False, "no exception")
except anthropic.NotFoundError as error:
    check("unknown model raises NotFoundError", error.status_code == 404 and "no-such-model" in str(error), str(error))

try:
    client.messages.create(model="gpt-limited", max_tokens=64, messages=[{"role": "user", "content": "Hello"}])
    check("rate limit raises", False, "no exception")
except anthropic.RateLimitError as error:
    check("provider 429 raises RateLimitError", error.status_code == 429, str(error))
