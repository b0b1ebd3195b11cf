"""The official openai SDK, unchanged except for base_url, against a running agent.

Usage: python openai_sdk_check.py BASE_URL
Checks plain and streamed chat on an OpenAI deployment and on an Anthropic one (translated),
the Responses API (plain and streamed; refused where it would need translating),
a tool call through the translation, and an error the SDK must raise as its own type.
Exits non-zero, naming the check, on the first failure.
"""
import json
import sys

import openai

client = openai.OpenAI(base_url=sys.argv[1], api_key="sk-not-needed-keyless", max_retries=0)


def check(name, condition, detail=""):
    if not condition:
        print(f"FAILED {name}: {detail}", file=sys.stderr)
        sys.exit(1)
    print(f"ok {name}")


for model in ["gpt-test", "claude"]:
    reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hello"}])
    check(f"{model} plain", reply.choices[0].message.content == "Sluice mock says hello and counts every token",
          reply.model_dump_json())
    check(f"{model} usage", reply.usage is not None and reply.usage.completion_tokens == 8, str(reply.usage))

    text, usage = "", None
    stream = client.chat.completions.create(model=model, stream=True, stream_options={"include_usage": True},
                                            messages=[{"role": "user", "content": "Hello"}])
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
        if chunk.usage is not None:
            usage = chunk.usage
    check(f"{model} streamed", text == "Sluice mock says hello and counts every token", text)
    check(f"{model} streamed usage", usage is not None and usage.completion_tokens == 8, str(usage))

tools = [{"type": "function", "function": {"name": "get_weather", "description": "Current weather",
                                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
reply = client.chat.completions.create(model="claude-tools", tools=tools, messages=[{"role": "user", "content": "Weather?"}])
calls = reply.choices[0].message.tool_calls or []
check("tool call", reply.choices[0].finish_reason == "tool_calls" and len(calls) == 1
      and calls[0].function.name == "get_weather" and json.loads(calls[0].function.arguments) == {"city": "Paris"},
      reply.model_dump_json())

arguments = ""
for chunk in client.chat.completions.create(model="claude-tools", tools=tools, stream=True,
                                            messages=[{"role": "user", "content": "Weather?"}]):
    for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
        arguments += call.function.arguments or ""
check("streamed tool call", json.loads(arguments) == {"city": "Paris"}, arguments)

try:
    client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "Hello"}])
    check("unknown model raises", False, "no exception")
except openai.NotFoundError as error:
    check("unknown model raises NotFoundError", error.status_code == 404 and "no-such-model" in str(error), str(error))

try:
    client.chat.completions.create(model="claude-overloaded", messages=[{"role": "user", "content": "Hello"}])
    check("overloaded raises", False, "no exception")
except openai.APIStatusError as error:
    check("overloaded raises with its status", error.status_code == 529 and "Overloaded" in str(error), str(error))

# The Responses API, which the SDK now steers new code to: passed through to an OpenAI
# deployment, translated for Anthropic and Gemini ones, plain and streamed with its typed events.
for model in ["gpt-test", "claude", "gemini"]:
    response = client.responses.create(model=model, input="Hello", instructions="Be brief.")
    check(f"{model} responses plain", response.output_text == "Sluice mock says hello and counts every token",
          response.model_dump_json())
    check(f"{model} responses usage", response.usage is not None and response.usage.output_tokens == 8,
          str(response.usage))

    deltas = ""
    with client.responses.stream(model=model, input=[{"role": "user", "content": "Hello"}]) as stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                deltas += event.delta
        final = stream.get_final_response()
    check(f"{model} responses streamed", deltas == "Sluice mock says hello and counts every token"
          and final.output_text == deltas, deltas)
    check(f"{model} responses streamed usage", final.usage is not None and final.usage.output_tokens == 8,
          str(final.usage))

response_tools = [{"type": "function", "name": "get_weather", "description": "Current weather",
                   "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]
response = client.responses.create(model="claude-tools", tools=response_tools, input="Weather?")
calls = [item for item in response.output if item.type == "function_call"]
check("responses tool call, translated", len(calls) == 1 and calls[0].name == "get_weather"
      and json.loads(calls[0].arguments) == {"city": "Paris"}, response.model_dump_json())

try:
    client.responses.create(model="claude", input="Hello", previous_response_id="resp_abc")
    check("stored state refused for a translated deployment", False, "no exception")
except openai.BadRequestError as error:
    check("stored state refused for a translated deployment", error.status_code == 400
          and "previous_response_id" in str(error), str(error))

# Embeddings from a Gemini deployment, in the base64 encoding the SDK asks for by default.
embeddings = client.embeddings.create(model="gemini", input=["first", "second"])
check("gemini embeddings", len(embeddings.data) == 2 and embeddings.data[1].index == 1
      and [round(value, 4) for value in embeddings.data[0].embedding] == [0.0023, -0.0091, 0.0154, 0.0042],
      embeddings.model_dump_json())
