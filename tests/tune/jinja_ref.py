"""Reference renderer for the jinja tests: renders a chat template the way transformers does
(ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols]),
globals raise_exception and strftime_now, tojson = json.dumps(ensure_ascii=False)).

Usage: jinja_ref.py CASES_JSON OUTPUT_JSON
CASES_JSON holds a list of {"template": str, "context": object}; OUTPUT_JSON gets a list with, per
case, {"text": rendered} or {"error": message} when parsing or rendering raises.
"""
import json
import sys
from datetime import datetime

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def strftime_now(format):
    return datetime.now().strftime(format)


def render(env, case):
    try:
        return {"text": env.from_string(case["template"]).render(**case["context"])}
    except Exception as e:  # TemplateError, and the TypeError/ZeroDivisionError Python raises
        return {"error": str(e)}


def main():
    cases_path, output_path = sys.argv[1:3]
    with open(cases_path, encoding="utf-8") as f:
        cases = json.load(f)
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    results = [render(env, case) for case in cases]
    with open(output_path, "w", encoding="utf-8") as f:
        json.dump(results, f, ensure_ascii=False)


if __name__ == "__main__":
    main()
