// The Jinja subset against python3-jinja2 configured as transformers configures it
// (tests/tune/jinja_ref.py): real chat templates, whitespace control and expressions must render
// byte for byte the same; plus the error messages for bad templates.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "test_util.hpp"
#include "tune/jinja.hpp"

namespace ld::tune::jinja {
namespace {

using nlohmann::json;

struct Case {
  std::string name;
  std::string source;
  nlohmann::ordered_json context;  // rendered with its keys in this order, which jinja_ref.py sees too
};

bool python_has_jinja() { return std::system(LIANDAN_PYTHON " -c 'import jinja2' >/dev/null 2>&1") == 0; }

// What jinja2 renders for each case: {"text": ...} or {"error": ...}.
json jinja_reference(const std::vector<Case>& cases) {
  test::TempDir dir("jinja_ref");
  nlohmann::ordered_json input = nlohmann::ordered_json::array();
  for (const Case& c : cases) input.push_back({{"template", c.source}, {"context", c.context}});
  std::ofstream(dir / "cases.json") << input.dump();
  const std::string cmd = std::string(LIANDAN_PYTHON " " LIANDAN_SOURCE_DIR "/tests/tune/jinja_ref.py ") +
                          (dir / "cases.json").string() + " " + (dir / "out.json").string();
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::ifstream in(dir / "out.json");
  return json::parse(in);
}

std::string render_or_error(const Case& c) {
  try {
    return Template(c.source, c.name).render_ordered(c.context);
  } catch (const Error& e) {
    return std::string("ERROR: ") + e.what();
  }
}

void expect_same_as_jinja(const std::vector<Case>& cases) {
  if (!python_has_jinja()) GTEST_SKIP() << "python3-jinja2 is not installed (tools/setup-deps.sh --tests)";
  const json reference = jinja_reference(cases);
  ASSERT_EQ(reference.size(), cases.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string got = render_or_error(cases[i]);
    if (reference[i].contains("text")) {
      EXPECT_EQ(got, reference[i]["text"].get<std::string>()) << "case " << cases[i].name;
    } else {  // jinja raised: we must raise too, with its message
      const std::string message = reference[i]["error"].get<std::string>();
      EXPECT_NE(got.find("ERROR: "), std::string::npos) << "case " << cases[i].name << " rendered " << got;
      EXPECT_NE(got.find(message), std::string::npos) << "case " << cases[i].name << ": " << got << " vs " << message;
    }
  }
}

std::string qwen3_template() {
  std::ifstream in(LIANDAN_SHARED_DIR "/tokenizers/qwen3/tokenizer_config.json");
  EXPECT_TRUE(in.good()) << "missing the Qwen3 tokenizer_config.json";
  return json::parse(in)["chat_template"].get<std::string>();
}

json msg(const std::string& role, const std::string& content) { return {{"role", role}, {"content", content}}; }

TEST(Jinja, Qwen3TemplateMatchesJinja) {
  const std::string qwen = qwen3_template();
  const json tool_call = {{"type", "function"},
                          {"function", {{"name", "get_weather"}, {"arguments", {{"city", "Zürich"}, {"days", 2}}}}}};
  json assistant_with_call = msg("assistant", "");
  assistant_with_call["tool_calls"] = json::array({tool_call});
  json with_reasoning = msg("assistant", "Final answer.");
  with_reasoning["reasoning_content"] = "\nLet me think.\n";
  const json tools = json::array({{{"type", "function"},
                                   {"function", {{"name", "get_weather"}, {"description", "Weather \"now\""}}}}});
  std::vector<Case> cases = {
      {"system+user, generation prompt", qwen,
       {{"messages", {msg("system", "You are helpful."), msg("user", "Hi!")}}, {"add_generation_prompt", true}}},
      {"multi-turn without system", qwen,
       {{"messages", {msg("user", "2+2?"), msg("assistant", "4"), msg("user", "and 3+3?"), msg("assistant", "6")}},
        {"add_generation_prompt", false}}},
      {"think blocks", qwen,
       {{"messages",
         {msg("user", "q1"), msg("assistant", "<think>\nold reasoning\n</think>\n\nanswer one"), msg("user", "q2"),
          msg("assistant", "<think>\nnew reasoning\n</think>\n\nanswer two")}},
        {"add_generation_prompt", false}}},
      {"enable_thinking false", qwen,
       {{"messages", {msg("user", "héllo 你好")}}, {"add_generation_prompt", true}, {"enable_thinking", false}}},
      {"reasoning_content field", qwen, {{"messages", {msg("user", "why?"), with_reasoning}}}},
      {"tools and tool calls", qwen,
       {{"messages", {msg("system", "sys"), msg("user", "Weather?"), assistant_with_call,
                      msg("tool", "{\"temp\": 21}"), msg("tool", "sunny"), msg("assistant", "21 and sunny.")}},
        {"tools", tools},
        {"add_generation_prompt", false}}},
  };
  expect_same_as_jinja(cases);
}

const char* const kChatML =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + "
    "'\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

// meta-llama/Llama-2-7b-chat-hf's chat template.
const char* const kLlama2 =
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = "
    "messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif "
    "%}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ "
    "raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if "
    "loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + "
    "'\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if "
    "message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] "
    "== 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}";

// meta-llama/Llama-3.2-1B-Instruct's chat template (tools, tojson(indent=4), raise_exception, |trim).
const char* const kLlama32 = R"JINJA({%- if custom_tools is defined %}
    {%- set tools = custom_tools %}
{%- endif %}
{%- if not tools_in_user_message is defined %}
    {%- set tools_in_user_message = true %}
{%- endif %}
{%- if not date_string is defined %}
    {%- if strftime_now is defined %}
        {%- set date_string = strftime_now("%d %b %Y") %}
    {%- else %}
        {%- set date_string = "26 Jul 2024" %}
    {%- endif %}
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

{#- System message #}
{{- "<|start_header_id|>system<|end_header_id|>\n\n" }}
{%- if tools is not none %}
    {{- "Environment: ipython\n" }}
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
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- if not message.tool_calls|length == 1 %}
            {{- raise_exception("This model only supports single tool-calls at once!") }}
        {%- endif %}
        {%- set tool_call = message.tool_calls[0].function %}
        {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
        {{- '{"name": "' + tool_call.name + '", ' }}
        {{- '"parameters": ' }}
        {{- tool_call.arguments | tojson }}
        {{- "}" }}
        {{- "<|eot_id|>" }}
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
)JINJA";

TEST(Jinja, Llama32TemplateMatchesJinja) {
  const json tools = json::array({{{"type", "function"},
                                   {"function", {{"name", "add"},
                                                 {"description", "Adds two numbers."},
                                                 {"parameters", {{"type", "object"}, {"required", {"a", "b"}}}}}}}});
  json call = msg("assistant", "");
  call["tool_calls"] = json::array({{{"function", {{"name", "add"}, {"arguments", {{"a", 1}, {"b", 2.5}}}}}}});
  json two_calls = call;
  two_calls["tool_calls"].push_back(call["tool_calls"][0]);
  const json base = {{"date_string", "01 Jan 2025"}, {"bos_token", "<|begin_of_text|>"}};
  json plain = base, with_tools = base, tools_in_system = base, bad = base;
  plain["messages"] = {msg("system", "  Be nice.  "), msg("user", "Hi"), msg("assistant", "Hello!"), msg("user", "Bye")};
  plain["add_generation_prompt"] = true;
  with_tools["messages"] = {msg("user", " What is 1+2.5? "), call, msg("tool", "3.5")};
  with_tools["tools"] = tools;
  tools_in_system["messages"] = with_tools["messages"];
  tools_in_system["tools"] = tools;
  tools_in_system["tools_in_user_message"] = false;
  bad["messages"] = {msg("user", "x"), two_calls};
  expect_same_as_jinja({{"llama3.2 plain", kLlama32, plain},
                        {"llama3.2 tools in user message", kLlama32, with_tools},
                        {"llama3.2 tools in system", kLlama32, tools_in_system},
                        {"llama3.2 two tool calls", kLlama32, bad}});
}

// Tool schemas and arguments print with tojson in the dataset's key order, as transformers does.
TEST(Jinja, OrderedJsonKeepsKeyOrderLikeTransformers) {
  const auto context = nlohmann::ordered_json::parse(R"({
    "tools": [{"type": "function", "function": {"name": "f", "description": "d",
               "parameters": {"type": "object", "properties": {"z": {"type": "string"}, "a": {"type": "integer"}}}}}],
    "messages": [{"role": "user", "content": "go"},
                 {"role": "assistant", "content": "",
                  "tool_calls": [{"function": {"name": "f", "arguments": {"z": "last", "a": 1}}}]}],
    "add_generation_prompt": false})");
  expect_same_as_jinja({{"qwen3 tools, document order", qwen3_template(), context},
                        {"items loop", "{% for k, v in tools[0].function.items() %}{{ k }};{% endfor %}", context}});
  // With nlohmann::json the keys are sorted, so the same template prints them sorted.
  EXPECT_EQ(Template("{{ d|tojson }}", "t").render(json{{"d", {{"z", 1}, {"a", 2}}}}), "{\"a\": 2, \"z\": 1}");
  EXPECT_EQ(Template("{{ d|tojson }}", "t").render_ordered(nlohmann::ordered_json{{"d", {{"z", 1}, {"a", 2}}}}),
            "{\"z\": 1, \"a\": 2}");
}

// google/gemma-2's and HuggingFaceH4/zephyr's templates: filters inside +, and trim_blocks on
// newline-separated tags.
const char* const kGemma =
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}";
const char* const kZephyr =
    "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}";

// mistralai/Mistral-7B-Instruct-v0.3's template (tools, `for ... if`, namespace counters, slices of tojson).
const char* const kMistral = R"JINJA({%- if messages[0]["role"] == "system" %}
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
)JINJA";

TEST(Jinja, GemmaZephyrMistralMatchJinja) {
  const json tokens = {{"bos_token", "<s>"}, {"eos_token", "</s>"}};
  const json conversation = {msg("user", " Hi "), msg("assistant", " Hello "), msg("user", "Weather?")};
  const json tools = json::array({{{"type", "function"},
                                   {"function", {{"name", "get_weather"}, {"description", "Get it"},
                                                 {"parameters", {{"type", "object"}}}}}}});
  const json call = {{"role", "assistant"},
                     {"tool_calls", {{{"id", "abc123xyz"}, {"function", {{"name", "get_weather"}, {"arguments", {{"city", "Paris"}}}}}}}}};
  auto with = [&](json extra) {
    json c = tokens;
    c.update(extra);
    return c;
  };
  json tool_conversation = conversation;
  tool_conversation.push_back(call);
  tool_conversation.push_back({{"role", "tool"}, {"content", "22C"}, {"tool_call_id", "abc123xyz"}});
  tool_conversation.push_back(msg("assistant", "22C."));
  json with_system = conversation;
  with_system.insert(with_system.begin(), msg("system", "Sys"));
  expect_same_as_jinja({
      {"gemma", kGemma, with({{"messages", conversation}, {"add_generation_prompt", true}})},
      {"gemma system is an error", kGemma, with({{"messages", with_system}})},
      {"zephyr", kZephyr, with({{"messages", with_system}, {"add_generation_prompt", true}})},
      {"zephyr no prompt", kZephyr, with({{"messages", conversation}})},
      {"mistral system", kMistral, with({{"messages", with_system}})},
      {"mistral tools", kMistral, with({{"messages", tool_conversation}, {"tools", tools}})},
      {"mistral bad alternation", kMistral, with({{"messages", {msg("user", "a"), msg("user", "b")}}})},
  });
}

TEST(Jinja, ChatMLAndLlama2MatchJinja) {
  const json conversation = {msg("system", "Be brief."), msg("user", "  Hello  "), msg("assistant", "Hi."),
                             msg("user", "Bye")};
  const json tokens = {{"bos_token", "<s>"}, {"eos_token", "</s>"}};
  json llama_ok = tokens;
  llama_ok["messages"] = conversation;
  json llama_no_system = tokens;
  llama_no_system["messages"] = {msg("user", "a"), msg("assistant", "b")};
  json llama_bad = tokens;
  llama_bad["messages"] = {msg("user", "a"), msg("user", "b")};
  expect_same_as_jinja({
      {"chatml", kChatML, {{"messages", conversation}, {"add_generation_prompt", true}}},
      {"chatml no prompt", kChatML, {{"messages", conversation}}},
      {"llama2", kLlama2, llama_ok},
      {"llama2 no system", kLlama2, llama_no_system},
      {"llama2 bad alternation", kLlama2, llama_bad},
  });
}

TEST(Jinja, RaiseExceptionMessageIsSurfaced) {
  const json context = {{"bos_token", "<s>"}, {"eos_token", "</s>"}, {"messages", {msg("user", "a"), msg("user", "b")}}};
  test::expect_mentions(test::error_message([&] { Template(kLlama2, "llama2.json").render(context); }),
                        {"llama2.json", "Conversation roles must alternate user/assistant/user/assistant/..."});
}

TEST(Jinja, WhitespaceControlMatchesJinja) {
  const json ctx = {{"items", {"a", "b", "c"}}, {"flag", true}, {"name", "x"}};
  std::vector<Case> cases;
  const char* const sources[] = {
      "{% for i in items %}\n  {{ i }}\n{% endfor %}\n",
      "  {% if flag %}\n    yes\n  {% endif %}\nafter\n",
      "{%- for i in items -%}\n  [{{ i }}]  \n{%- endfor %}\nend",
      "a  {{- name -}}  b\n  {{ name }}  \n",
      "x {% if flag %}inline{% endif %} y\n   {%+ if flag %}kept{% endif %}\n",
      "{# a comment #}\n  {# indented comment #}\nline\n{#- stripped -#}   tail",
      "line1\r\nline2\r\n{% if flag %}\r\nwin\r\n{% endif %}\r\n",
      "{% if flag +%}\nno trim{% endif %}",
      "{{ name }}\n{% set y = 1 %}\n\n{{ y }}\n\n",
      "<{% for i in items %}{{ i }}{% if not loop.last %}, {% endif %}{% endfor %}>",
      "\t{% for i in items %}\t{{ loop.index }}{% endfor %}\n\n",
      "{% for i in items %}\n    {{- i }}\n    {%- if not loop.last %},{% endif %}\n{% endfor %}",
      "  {{ name }}  {% if flag %}A{% endif %}  \n  {% if flag -%}  \n\n  B  {%- endif %}  \nC",
      "{{ '}}' }} {{ '{%' }} {% if name == '%}' %}no{% else %}yes{% endif %}{# {{ ignored }} #}",
      "{% if flag %}a{% else %}b{% endif %}\n{% if not flag %}c{% elif name %}d{% endif %}\n   \n",
      "{%- if flag -%}\n\n  trimmed  \n\n{%- endif -%}\n\n",
      "  {#- c -#}  x  {#+ c #}\n",
  };
  for (const char* s : sources) cases.push_back({std::string("whitespace: ") + s, s, ctx});
  expect_same_as_jinja(cases);
}

TEST(Jinja, ExpressionsMatchJinja) {
  const json ctx = {{"m", {{"role", "user"}, {"content", "  Hello, World  "}, {"n", 7}}},
                    {"xs", {3, 1, 2}},
                    {"ws", {"b", "a"}},
                    {"msgs", {msg("user", "u1"), msg("assistant", "a1"), msg("user", "u2")}},
                    {"f", 2.5},
                    {"nothing", nullptr}};
  const char* const sources[] = {
      "{{ m.role == m['role'] }} {{ m.content.strip() }}|{{ m.content.lstrip() }}|{{ m.content.rstrip() }}|",
      "{{ xs[::-1] }} {{ xs[1:] }} {{ xs[:-1] }} {{ xs[-1] }} {{ 'héllo'[1:3] }} {{ 'abc'[::-1] }} {{ xs[5] }}",
      "{{ 7 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 1 + 2 * 3 - 4 }} {{ f * 2 }} {{ 0.1 + 0.2 }}",
      "{{ 'a' + 'b' ~ 1 ~ none ~ true }} {{ [1] + [2] }} {{ 'ab' * 3 }} {{ 1e20 }} {{ 1.5e-7 }} {{ 100.0 }}",
      "{{ 1 < 2 < 3 }} {{ 'a' in 'cat' }} {{ 4 not in xs }} {{ 'role' in m }} {{ not nothing }} {{ 2 in xs and 9 }}",
      "{{ m.missing is defined }} {{ m.missing is not defined }} {{ nothing is none }} {{ m is mapping }} "
      "{{ xs is sequence }} {{ 'x' is string }} {{ 3 is odd }} {{ 4 is divisibleby 2 }} {{ f is float }}",
      "{{ 'yes' if m.n > 5 else 'no' }} {{ 'y' if nothing }}| {{ m.missing or 'fallback' }}",
      "{{ xs|length }} {{ m|tojson }} {{ ws|join(', ') }} {{ xs|first }} {{ xs|last }} {{ ' t '|trim }} "
      "{{ 'Ab'|upper }}{{ 'Ab'|lower }} {{ m.missing|default('dflt') }} {{ ''|default('e', true) }} {{ 42|string }}",
      "{{ msgs|selectattr('role', 'equalto', 'user')|map(attribute='content')|join('+') }} "
      "{{ msgs|rejectattr('role', 'eq', 'user')|list|length }} {{ m|items|list }} {{ 'abc'|list }}",
      "{{ m.content.split(',') }} {{ 'a b  c'.split() }} {{ m.content.startswith('  He') }} {{ 'x.py'.endswith(('.py', '.c')) }} "
      "{{ 'aXbX'.replace('X', '-') }} {{ 'hello world'.title() }} {{ 'Hi'.upper() }}{{ 'Hi'.lower() }}",
      "{% for k, v in m.items() %}{{ k }}={{ v }};{% endfor %} {{ m.keys()|list }} {{ m.get('n') }} "
      "{{ m.get('zz', 'none!') }} {{ m.values()|list|length }}",
      "{% set ns = namespace(found=false, count=0) %}{% for x in xs %}{% if x > 1 %}{% set ns.count = ns.count + 1 %}"
      "{% set ns.found = true %}{% endif %}{% endfor %}{{ ns.found }} {{ ns.count }}",
      "{% for x in xs %}{% if x == 1 %}{% continue %}{% endif %}{% if x == 2 %}{% break %}{% endif %}{{ x }}"
      "{{ loop.index0 }}{{ loop.index }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{% endfor %}",
      "{% for x in [] %}x{% else %}empty{% endfor %} {% for x in xs if x > 1 %}{{ x }}{{ loop.length }}{% endfor %}",
      "{% macro wrap(t, open='[', close=']') %}{{ open }}{{ t }}{{ close }}{% endmacro %}{{ wrap('a') }}"
      "{{ wrap('b', close='>') }}{{ wrap('c', '(', ')') }}",
      "{% set x = 1 %}{% for i in xs %}{% set x = i %}{% endfor %}{{ x }} {% if true %}{% set y = 5 %}{% endif %}{{ y }}",
      "{{ {'b': 1, 'a': [1, 2.0, none, true, 'q\"']} }} {{ {'k': 'é'}|tojson(indent=2) }} {{ (1, 2) }} {{ [] }}",
      "{{ \"esc\\n\\t\\\\ \\u00e9 \\x41\" }} {{ 'it''s' }} {{ -m.n }} {{ m.n|abs }} {{ '3'|int + 1 }} {{ xs|reverse|list }}",
      "{{ range(3)|list }} {{ range(1, 7, 2)|list }} {{ nothing }} {{ msgs[0].role }}",
      "{{ m.missing.deeper }}",
      "{{ undefined_name + 1 }}",
      "{{ msgs[9]['role'] }}",
      "{{ 1e16 }} {{ 123456789012345678.0 }} {{ 0.0001 }} {{ 0.00001 }} {{ -0.0 }} {{ 10 / 5 }} {{ 'a' ~ 1.0 }} {{ 2 ** -1 }}",
      "{% for x in xs %}{{ loop.previtem }}/{{ loop.nextitem }}/{{ loop.revindex }}/{{ loop.cycle('o', 'e') }};{% endfor %}",
      "{% for a in xs %}{% for b in ws %}{{ loop.index }}{% endfor %}{{ loop.index }}|{% endfor %}",
      "{{ none }} {{ true }} {{ false is sameas false }} {{ 1 is true }} {{ true is true }} {{ (1,) }} {{ xs|join }} {{ \"a\" 'b' }}",
      "{{ {'z': [1, {'y': 'ctl\x01 </s> é'}], 'a': 0.5}|tojson }} {{ {'b': 1, 'a': 2}|tojson(indent=1, sort_keys=true) }}",
      "{% set a, b = 1, 2 %}{{ a }}{{ b }} {{ nothing|default('dn', true) }} {{ nothing is not none and nothing }}",
      "{% set top = 'T' %}{% macro show(v) %}{{ top }}{{ v }}{% for i in [1, 2] %}{{ i }}{% endfor %}{% endmacro %}"
      "{% for x in xs %}{{ show(x) }}{% endfor %}",
      "{{ m.content[:5] }}|{{ m.content[-3:] }}|{{ 'abcdef'[1:5:2] }}|{{ xs[10:] }}|{{ xs[::-2] }}|{{ 'é'|length }}",
      "{{ msgs|selectattr('role', 'equalto', 'user')|list|last }} {{ msgs|map(attribute='role')|unique|list if false }}",
      "{{ xs|select('odd')|list }} {{ [0, 1, '', 'a']|select|list }} {{ msgs|map(attribute='missing', default='-')|join }}",
      "{{ 'a,b,,c'.split(',', 1) }} {{ '  x  y '.split(none, 1) }} {{ '--a--'.strip('-') }} {{ 'Hello'.find('l') }}",
      "{{ ['b', 'A', 'c']|sort }} {{ xs|sort(reverse=true) }} {{ msgs|sort(attribute='role')|map(attribute='content')|join }} "
      "{{ ['b', 'A', 'B']|max }} {{ xs|min }} {{ [1, 2.5]|sum }} {{ {'b': 2, 'A': 3, 'a': 1}|dictsort }}",
      "{{ 'a\\nb\\n\\nc'|indent }}|{{ 'a\\nb'|indent(2, true) }}|{{ 'a\\n\\nb'|indent('> ', blank=true) }}|"
      "{{ m.keys() }} {{ m.items() }} {{ '0x1A'|int(0, 16) }} {{ xs|join(', ', attribute=none) }} {{ 5e-324 }}",
      "{{ 'Çà va ÉCOLE straße Привет ΓΕΙΆ σου'|upper }}|{{ 'ÇÀ VA École ПРИВЕТ Γειά'|lower }}|"
      "{{ 'élan vital ñandú-éclair они'|title }}|{{ 'ÉCOLE' is upper }} {{ 'été' is lower }}",
      "{{ m|tojson(separators=(',', ':')) }} {{ m|tojson(indent=2, separators=(';', '=')) }} {{ [1, true]|tojson(indent=0) }}",
      "{% macro tree(v) %}{% if v is mapping %}{% for k, x in v.items() %}{{ k }}({{ tree(x) }}){% endfor %}"
      "{% else %}{{ v }}{% endif %}{% endmacro %}{{ tree({'a': {'b': 1, 'c': {'d': none}}}) }}",
  };
  std::vector<Case> cases;
  for (const char* s : sources) cases.push_back({std::string("expression: ") + s, s, ctx});
  expect_same_as_jinja(cases);
}

TEST(Jinja, SyntaxErrorNamesOriginAndLine) {
  const std::string msg = test::error_message([] { Template("line one\n{% if x %}\n{{ x + }}\n{% endif %}", "cfg.json"); });
  test::expect_mentions(msg, {"cfg.json:3", "syntax error"});
  test::expect_mentions(test::error_message([] { Template("{% if x %}never closed", "t.jinja"); }),
                        {"t.jinja:1", "endif"});
  test::expect_mentions(test::error_message([] { Template("{{ 'unterminated }}", "t.jinja"); }), {"unterminated string"});
  test::expect_mentions(test::error_message([] { Template("a\n\n{{ x ", "t.jinja"); }), {"t.jinja:3", "}}"});
}

TEST(Jinja, UnknownOrUnsupportedConstructsAreNamed) {
  test::expect_mentions(test::error_message([] { Template("\n{{ x | frobnicate }}", "t.jinja"); }),
                        {"t.jinja:2", "no filter named 'frobnicate'"});
  test::expect_mentions(test::error_message([] { Template("{{ x is fancy }}", "t.jinja"); }), {"no test named 'fancy'"});
  test::expect_mentions(test::error_message([] { Template("{% include 'other.j2' %}", "t.jinja"); }),
                        {"unsupported tag 'include'"});
  test::expect_mentions(test::error_message([] { Template("{% set x %}block{% endset %}", "t.jinja"); }),
                        {"block assignments"});
  test::expect_mentions(test::error_message([] { Template("{{ 'a'.format(1) }}", "t.jinja").render(json::object()); }),
                        {"str.format()", "not supported"});
  test::expect_mentions(test::error_message([] { Template("{{ xs.append(1) }}", "t.jinja").render({{"xs", {1}}}); }),
                        {"list.append()", "not supported"});
}

TEST(Jinja, RuntimeErrorsNameOriginAndLine) {
  test::expect_mentions(test::error_message([] { Template("ok\n{{ m.a.b }}", "cfg.json").render({{"m", json::object()}}); }),
                        {"cfg.json:2", "'dict object' has no attribute 'a'"});
  test::expect_mentions(test::error_message([] { Template("{{ 1 + 'a' }}", "t").render(json::object()); }),
                        {"unsupported operand", "int", "str"});
  test::expect_mentions(test::error_message([] { Template("{{ 1 // 0 }}", "t").render(json::object()); }),
                        {"division by zero"});
  // Python would print 10^20; a 64-bit int cannot, so it is an error rather than a wrapped number.
  test::expect_mentions(test::error_message([] { Template("{{ 10000000000 * 10000000000 }}", "t").render(json::object()); }),
                        {"integer overflow"});
  test::expect_mentions(test::error_message([] {
                          Template("{% macro m(a) %}{% endmacro %}{{ m(b=1) }}", "t").render(json::object());
                        }),
                        {"macro 'm' takes no keyword argument 'b'"});
  test::expect_mentions(test::error_message([] {
                          Template("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "t").render(json::object());
                        }),
                        {"macro 'f' nested deeper than 200 calls"});
}

// transformers' {% generation %} marks assistant text for its masks; rendered, it is just its body.
// strftime_now is transformers' global (jinja_ref.py has it too, but its output changes daily).
TEST(Jinja, GenerationBlockAndStrftimeNow) {
  EXPECT_EQ(Template("a{% generation %}{{ x }}{% endgeneration %}b", "t").render({{"x", 1}}), "a1b");
  const std::string year = Template("{{ strftime_now('%Y') }}", "t").render(json::object());
  ASSERT_EQ(year.size(), 4u);
  EXPECT_GE(std::stoi(year), 2024);
}

TEST(Jinja, TemplateIsReusableAndCopyable) {
  const Template t("{{ a }}-{{ b|default('none') }}", "t");
  const Template copy = t;
  EXPECT_EQ(t.render({{"a", 1}}), "1-none");
  EXPECT_EQ(copy.render({{"a", "x"}, {"b", 2.0}}), "x-2.0");
  EXPECT_EQ(t.render(json::object()), "-none");
}

}  // namespace
}  // namespace ld::tune::jinja
