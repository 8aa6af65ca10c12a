// SPDX-License-Identifier: Apache-2.0
// Language cases for chat_template_test.cc: each template and context with the text that Python
// Jinja2 3.1.6 renders (HF transformers' environment: trim_blocks, lstrip_blocks, loopcontrols,
// its tojson), or the error it raises (want_error: a substring of our message). Regenerate by
// rendering `src` with `ctx` in that environment; never edit `want` by hand.
#pragma once

namespace weft::tokenizer::testing {

struct JinjaCase {
  const char* src;
  const char* ctx;  // JSON object; null: kCommonContext, "2": kCommonContext2
  bool ok;
  const char* want;  // the rendered text, or (ok = false) a substring of the error
};

// The context of the cases whose ctx is null.
inline constexpr const char* kCommonContext =
    R"({"d": {"a": 1, "b": [1, 2, 3], "s": "Hello World", "n": null, "t": true, "f": 1.5, "items": 7, "nested": {"x": {"y": "deep"}}}, "msgs": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}, {"role": "user", "content": "bye"}]})";

// The context of the cases whose ctx is "2".
inline constexpr const char* kCommonContext2 =
    R"({"d": {"a": 1, "b": [1, 2, 3], "s": "Hello World", "u": "héllo wörld 日本", "tools": [{"type": "function", "function": {"name": "f", "description": "desc", "parameters": {"type": "object", "properties": {"x": {"type": "string", "enum": ["a", "b"]}, "y": {"type": "array", "items": {"type": "integer"}}}, "required": ["x"]}}}]}})";

inline constexpr JinjaCase kJinjaCases[] = {
    {R"({{ 1 + 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }} {{ 1.5 * 2 }} {{ 3 - 5 }})",
     nullptr,
     true, R"(3 3 -4 1 2 3.5 1024 3.0 -2)"},
    {R"({{ 'a' ~ 1 ~ none ~ true }} {{ 'ab' * 3 }} {{ [1] * 3 }} {{ [1,2] + [3] }})",
     nullptr,
     true, R"(a1NoneTrue ababab [1, 1, 1] [1, 2, 3])"},
    {R"({{ d.s.upper() }} {{ d.s.lower() }} {{ d.s|upper }} {{ d.s.title() }} {{ 'hello wORLD'|title }} {{ 'hello'|capitalize }})",
     nullptr,
     true, R"(HELLO WORLD hello world HELLO WORLD Hello World Hello World Hello)"},
    {R"({{ '  x  '.strip() }}|{{ '  x  '.lstrip() }}|{{ '  x  '.rstrip() }}|{{ 'xxhixx'.strip('x') }}|{{ '  a b  '|trim }}|)",
     nullptr,
     true, R"(x|x  |  x|hi|a b|)"},
    {R"({{ 'a,b,,c'.split(',') }} {{ ' a  b c '.split() }} {{ 'a b c'.split(' ', 1) }} {{ 'a,b,c'.rsplit(',', 1) }})",
     nullptr,
     true, R"(['a', 'b', '', 'c'] ['a', 'b', 'c'] ['a', 'b c'] ['a,b', 'c'])"},
    {R"({{ d.s.startswith('Hell') }} {{ d.s.endswith('xx') }} {{ d.s.replace('l', 'L') }} {{ d.s|replace('o', '0') }} {{ d.s.find('W') }})",
     nullptr,
     true, R"(True False HeLLo WorLd Hell0 W0rld 6)"},
    {R"({{ d.s[::-1] }} {{ d.s[1:3] }} {{ d.b[1:] }} {{ d.b[::-1] }} {{ d.b[:-1] }} {{ d.s[-3:] }} {{ d.b[::2] }})",
     nullptr,
     true, R"(dlroW olleH el [2, 3] [3, 2, 1] [1, 2] rld [1, 3])"},
    {R"({% for x in d.b %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.revindex }}{{ loop.revindex0 }}|{% endfor %})",
     nullptr,
     true, R"(10TrueFalse332|21FalseFalse321|32FalseTrue310|)"},
    {R"({% for x in d.b if x > 1 %}{{ x }}:{{ loop.index }}/{{ loop.length }} {% else %}none{% endfor %})",
     nullptr,
     true, R"(2:1/2 3:2/2 )"},
    {R"({% for x in [] %}{{ x }}{% else %}empty{% endfor %})",
     nullptr,
     true, R"(empty)"},
    {R"({% for k, v in d.nested.items() %}{{ k }}={{ v }}{% endfor %})",
     nullptr,
     true, R"(x={'y': 'deep'})"},
    {R"({% for k in d %}{{ k }},{% endfor %})",
     nullptr,
     true, R"(a,b,s,n,t,f,items,nested,)"},
    {R"({% for k, v in d|items %}{{ k }};{% endfor %})",
     nullptr,
     true, R"(a;b;s;n;t;f;items;nested;)"},
    {R"({% set ns = namespace(c=0, l=[]) %}{% for x in d.b %}{% set ns.c = ns.c + x %}{% endfor %}{{ ns.c }})",
     nullptr,
     true, R"(6)"},
    {R"({% set x = 1 %}{% for i in [1,2] %}{% set x = x + i %}{{ x }}{% endfor %}{{ x }})",
     nullptr,
     true, R"(231)"},
    {R"({% set a, b = 1, 2 %}{{ a }}{{ b }}{% set t = 1, 2 %}{{ t }})",
     nullptr,
     true, R"(12(1, 2))"},
    {R"({% set blk %}inner {{ d.a }}{% endset %}[{{ blk }}])",
     nullptr,
     true, R"([inner 1])"},
    {R"({% macro m(a, b='B') %}<{{ a }}{{ b }}>{% endmacro %}{{ m(1) }}{{ m(2, 'c') }}{{ m(a=3, b=4) }})",
     nullptr,
     true, R"(<1B><2c><34>)"},
    {R"({{ d.b|length }} {{ d.s|length }} {{ d|length }} {{ d.b|first }} {{ d.b|last }} {{ d.b|join('-') }} {{ d.b|sum }} {{ d.b|max }} {{ d.b|min }})",
     nullptr,
     true, R"(3 11 8 1 3 1-2-3 6 3 1)"},
    {R"({{ d.zz|default('dflt') }} {{ ''|default('e', true) }} {{ none|default('n') }} {{ d.a|default(5) }})",
     nullptr,
     true, R"(dflt e None 1)"},
    {R"({{ msgs|selectattr('role', 'equalto', 'user')|list|length }} {{ msgs|rejectattr('role', 'eq', 'user')|map(attribute='content')|list }} {{ msgs|map(attribute='role')|unique|list }})",
     nullptr,
     true, R"(2 ['yo'] ['user', 'assistant'])"},
    {R"({{ [3,1,2]|sort }} {{ ['b','A','c']|sort }} {{ [3,1,2]|sort(reverse=true) }} {{ msgs|sort(attribute='content')|map(attribute='content')|join(',') }})",
     nullptr,
     true, R"([1, 2, 3] ['A', 'b', 'c'] [3, 2, 1] bye,hi,yo)"},
    {R"({{ d.b|tojson }} {{ d.nested|tojson }} {{ {'z': 1, 'a': '<é>&\'', 'l': [1.5, none, true]}|tojson }} {{ d|tojson(indent=2) }})",
     nullptr,
     true, R"([1, 2, 3] {"x": {"y": "deep"}} {"z": 1, "a": "<é>&'", "l": [1.5, null, true]} {
  "a": 1,
  "b": [
    1,
    2,
    3
  ],
  "s": "Hello World",
  "n": null,
  "t": true,
  "f": 1.5,
  "items": 7,
  "nested": {
    "x": {
      "y": "deep"
    }
  }
})"},
    {R"({{ 'x' is string }} {{ 1 is number }} {{ d is mapping }} {{ d.b is iterable }} {{ d.b is sequence }} {{ none is none }} {{ d.q is defined }} {{ d.q is undefined }} {{ 3 is odd }} {{ 4 is even }} {{ 10 is divisibleby 5 }} {{ true is true }} {{ 1 is true }} {{ false is false }} {{ true is boolean }} {{ 1 is integer }} {{ 1.0 is float }})",
     nullptr,
     true, R"(True True True True True True False True True True True True False True True True True)"},
    {R"({{ 1 if true else 2 }} {{ 1 if false else 2 }} [{{ 1 if false }}] {{ 'yes' if d.q is defined else 'no' }})",
     nullptr,
     true, R"(1 2 [] no)"},
    {R"({{ 1 in [1,2] }} {{ 3 not in [1,2] }} {{ 'a' in 'cat' }} {{ 'a' in d }} {{ 'zz' in d }} {{ 1 < 2 < 3 }} {{ 1 == 1.0 }} {{ true == 1 }} {{ 'a' != 'b' }})",
     nullptr,
     true, R"(True True True True False True True True True)"},
    {R"({{ not true }} {{ true and false }} {{ true or false }} {{ 0 or 'x' }} {{ 1 and 'y' }} {{ none or [] }})",
     nullptr,
     true, R"(False False True x y [])"},
    {R"({{ d.f }} {{ 1e20 }} {{ 1.0 }} {{ 0.1 + 0.2 }} {{ 2.5|round }} {{ 3.14159|round(2) }} {{ '42'|int + 1 }} {{ '3.5'|float }} {{ 3.9|int }} {{ 10 / 4 }} {{ 1e-7 }} {{ 123456789012345678.0 }})",
     nullptr,
     true, R"(1.5 1e+20 1.0 0.30000000000000004 2.0 3.14 43 3.5 3 2.5 1e-07 1.2345678901234568e+17)"},
    {R"({{ [1, 'a', none, true, 1.5, {'k': 'v'}] }} {{ (1,) }} {{ (1, 2) }} {{ {'a': [1]} }} {{ "it's" }} {{ ['it\'s'] }})",
     nullptr,
     true, R"([1, 'a', None, True, 1.5, {'k': 'v'}] (1,) (1, 2) {'a': [1]} it's ["it's"])"},
    {R"({% for i in range(3) %}{{ i }}{% endfor %} {% for i in range(1, 10, 3) %}{{ i }}{% endfor %})",
     nullptr,
     true, R"(012 147)"},
    {R"({% for x in [1,2,3,4] %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 4 %}{% break %}{% endif %}{{ x }}{% endfor %})",
     nullptr,
     true, R"(13)"},
    {R"({{ 'line1\nline2\n\nline4'|indent(2) }}|{{ 'a\nb'|indent(4, true) }}|{{ 'a\n\nb'|indent(2, blank=true) }})",
     nullptr,
     true, R"(line1
  line2

  line4|    a
    b|a
  
  b)"},
    {R"({{ '<a & b>'|e }} {{ 'x'|safe }} {{ 5|string ~ 'x' }} {{ [1,2]|string }})",
     nullptr,
     true, R"(&lt;a &amp; b&gt; x 5x [1, 2])"},
    {R"({{ 'Hello {} and {name}'.format('A', name='B') }})",
     nullptr,
     true, R"(Hello A and B)"},
    {R"({{ d.get('a') }} {{ d.get('q', 'def') }} {{ d.get('q') }} {{ d.keys()|list }} {{ d.nested.values()|list }})",
     nullptr,
     true, R"(1 def None ['a', 'b', 's', 'n', 't', 'f', 'items', 'nested'] [{'y': 'deep'}])"},
    {R"({{ d.b|reverse|list }} {{ 'abc'|reverse }} {{ 'abc'|list }} {{ d.b|batch(2)|list }})",
     nullptr,
     true, R"([3, 2, 1] cba ['a', 'b', 'c'] [[1, 2], [3]])"},
    {R"({{ d.nested.x|dictsort }} {{ {'b': 1, 'a': 2}|dictsort }})",
     nullptr,
     true, R"([('y', 'deep')] [('a', 2), ('b', 1)])"},
    {R"({% for m in msgs %}{{ loop.cycle('odd', 'even') }}{% if not loop.last %},{% endif %}{% endfor %})",
     nullptr,
     true, R"(odd,even,odd)"},
    {R"({{ msgs[0].role }}{{ msgs[0]['role'] }}{{ msgs|last|attr('role') if false else (msgs|last)['content'] }})",
     nullptr,
     true, R"(useruserbye)"},
    {R"({{ raise_exception('boom') }})",
     nullptr,
     false, R"(boom)"},
    {R"({{ undefined_var.attr }})",
     nullptr,
     false, R"('undefined_var' is undefined)"},
    {R"({{ d.missing.attr }})",
     nullptr,
     false, R"('dict object' has no attribute 'missing')"},
    {R"({{ 'a' + 1 }})",
     nullptr,
     false, R"(can only concatenate str (not "int") to str)"},
    {R"({{ 1 + none }})",
     nullptr,
     false, R"(unsupported operand type(s) for +: 'int' and 'NoneType')"},
    {R"({{ undefined_var + 1 }})",
     nullptr,
     false, R"('undefined_var' is undefined)"},
    {R"({% for x in 5 %}{% endfor %})",
     nullptr,
     false, R"('int' object is not iterable)"},
    {R"({{ none.x }}|{{ 'x'.nope }}|{{ 1 / 0 }})",
     nullptr,
     false, R"(division by zero)"},
    {R"({% if %})",
     nullptr,
     false, R"(syntax error)"},
    {R"({% for x in y %})",
     nullptr,
     false, R"(syntax error)"},
    {R"({% endif %})",
     nullptr,
     false, R"(syntax error)"},
    {R"({{ x | nosuchfilter }})",
     nullptr,
     false, R"(No filter named 'nosuchfilter'.)"},
    {R"({% set x = [1,2,3] %}{{ x[5] }}|{{ x['a'] }}|{{ 'abc'[10] }})",
     nullptr,
     true, R"(||)"},
    {R"({{ strftime_now('%Y') }})",
     nullptr,
     true, R"(26 Jul 2024)"},
    {R"({% set x = 'a' %}{% if x %}{{ x }}{% endif %})",
     nullptr,
     true, R"(a)"},
    {R"({{ '\u00e9\x41\t|' }})",
     nullptr,
     true, R"(éA	|)"},
    {R"({{ "a" 'b' }})",
     nullptr,
     true, R"(ab)"},
    {R"({{ d.nested['x']['y']|upper|replace('E', '3') + '!' }})",
     nullptr,
     true, R"(D33P!)"},
    {R"({{ -d.a }} {{ -(1 + 2) }} {{ - 1|abs }} {{ -1.5|abs }})",
     nullptr,
     true, R"(-1 -3 1 1.5)"},
    {R"({{ [1,2,3]|select('odd')|list }} {{ [1,2,3]|reject('odd')|list }} {{ ['a', 1, 'b']|select('string')|list }} {{ [0, 1, '', 'x']|select|list }})",
     nullptr,
     true, R"([1, 3] [2] ['a', 'b'] [1, 'x'])"},
    {R"({{ ['a', 'b']|map('upper')|join }} {{ msgs|map(attribute='nope', default='?')|list }})",
     nullptr,
     true, R"(AB ['?', '?', '?'])"},
    {R"({{ d.b|map('string')|join(', ') }} {{ 'a-b'.split('-')|join('+') }} {{ ', '.join(['x', 'y']) }})",
     nullptr,
     true, R"(1, 2, 3 a+b x, y)"},
    {R"({% filter upper %}hello {{ d.a }}{% endfilter %})",
     nullptr,
     true, R"(HELLO 1)"},
    {R"({%- raw %}{{ not rendered }}{% endraw %})",
     nullptr,
     true, R"({{ not rendered }})"},
    {R"({{ d.s.count('l') }} {{ 'abc'.index('c') }} {{ '123'.isdigit() }} {{ 'ab'.isalpha() }} {{ 'aB'.swapcase() }} {{ 'AB'.isupper() }})",
     nullptr,
     true, R"(3 2 True True Ab True)"},
    {R"({{ d.t and d.n is none }} {{ d.n is not none }} {{ not d.q is defined }})",
     nullptr,
     true, R"(True False True)"},
    {R"({{ msgs|selectattr('content')|list|length }} {{ [none, 1]|reject('none')|list }} {{ msgs|selectattr('role', 'in', ['user'])|list|length }})",
     nullptr,
     true, R"(3 [1] 2)"},
    {R"({{ 'x' if msgs[0].role == 'user' and not msgs[-1].content.startswith('<tool') else 'y' }})",
     nullptr,
     true, R"(x)"},
    {R"({% if d.b %}non-empty{% endif %}{% if [] %}E{% endif %}{% if {} %}E{% endif %}{% if 0.0 %}E{% endif %})",
     nullptr,
     true, R"(non-empty)"},
    {R"({{ d.b.index(2) }} {{ d.b.count(1) }})",
     nullptr,
     true, R"(1 1)"},
    {R"({{ [1, [2, 3]]|tojson(indent=4) }} {{ []|tojson(indent=2) }} {{ {}|tojson }} {{ 'a"b\\c\n\u0001'|tojson }})",
     nullptr,
     true, R"([
    1,
    [
        2,
        3
    ]
] [] {} "a\"b\\c\n\u0001")"},
    {R"({{ {'a': 1}|tojson(separators=(',', ':')) }} {{ {'b': 1, 'a': 2}|tojson(sort_keys=true) }} {{ 'é'|tojson(ensure_ascii=true) }})",
     nullptr,
     true, R"({"a":1} {"a": 2, "b": 1} "\u00e9")"},
    {R"(a
  {% if true %}
  x
  {% endif %}
b)",
     R"({})",
     true, R"(a
  x
b)"},
    {R"(a
  {%- if true %}
  x
  {%- endif %}
b)",
     R"({})",
     true, R"(a  xb)"},
    {R"(a
  {%+ if true %}
  x
  {% endif +%}
b)",
     R"({})",
     true, R"(a
    x

b)"},
    {R"(a  {% if true %}x{% endif %}  b
)",
     R"({})",
     true, R"(a  x  b)"},
    {R"(  {{ 1 }}
  {# c #}
  {{ 2 }}
)",
     R"({})",
     true, R"(  1
  2)"},
    {R"({% for i in [1,2] %}
  {{ i }}
{% endfor %}
)",
     R"({})",
     true, R"(  1
  2
)"},
    {R"({%- for i in [1,2] -%}
  {{ i }}
{%- endfor -%}
end)",
     R"({})",
     true, R"(12end)"},
    {R"(x {{- ' y ' -}} z)",
     R"({})",
     true, R"(x y z)"},
    {R"(line
{# comment -#}
   after)",
     R"({})",
     true, R"(line
after)"},
    {"a\015\nb\015\n{% if true %}\015\nc\015\n{% endif %}\015\n",
     R"({})",
     true, R"(a
b
c
)"},
    {R"(	{% if true %}tab{% endif %}
)",
     R"({})",
     true, R"(tab)"},
    {R"({{ 'x' }}
{% set a = 1 %}

{{ a }}

)",
     R"({})",
     true, R"(x

1
)"},
    {R"(text {% if true -%}   

  y {%- endif %} z)",
     R"({})",
     true, R"(text y z)"},
    {R"({# only comment #}
)",
     R"({})",
     true, R"()"},
    {R"({% if true %}  {% endif %}|)",
     R"({})",
     true, R"(  |)"},
    {R"(A
    {% for x in [1] %}{{ x }}{% endfor %}
B)",
     R"({})",
     true, R"(A
1B)"},
    {R"({% raw -%}
  {{ x }}
{%- endraw %})",
     R"({})",
     true, R"({{ x }})"},
    {R"({{ {'a': {'b': 1}} }})",
     R"({})",
     true, R"({'a': {'b': 1}})"},
    {R"({{ {'a': {'b': 1}}['a'] -}}  
)",
     R"({})",
     true, R"({'b': 1})"},
    {R"({% macro m(a, b=a) %}{{ a }}{{ b }}{% endmacro %}{{ m(1) }}{{ m(1, 2) }})",
     "2",
     true, R"(1112)"},
    {R"({% macro t(spec) %}{% if spec.type == 'array' %}{{ t(spec['items']) }}[]{% elif spec.type == 'string' and spec.enum is defined %}{{ spec.enum|map('tojson')|join(' | ') }}{% elif spec.type == 'integer' %}number{% else %}{{ spec.type }}{% endif %}{% endmacro %}{% for tool in d.tools %}{% for k, v in tool.function.parameters.properties|items %}{{ k }}: {{ t(v) }}
{% endfor %}{% endfor %})",
     "2",
     true, R"(x: "a" | "b"
y: number[]
)"},
    {R"({% for a in [1,2] %}{% for b in 'xy' %}{{ loop.index }}{{ b }}{% endfor %}{{ loop.index }}|{% endfor %})",
     "2",
     true, R"(1x2y1|1x2y2|)"},
    {R"({% for x in d.b %}{{ loop.previtem }}-{{ loop.nextitem }};{% endfor %})",
     "2",
     true, R"(-2;1-3;2-;)"},
    {R"({{ '%s-%d %.2f %5s|%-4s|'|format('a', 3, 2.345, 'r', 'l') }})",
     "2",
     true, R"(a-3 2.35     r|l   |)"},
    {R"({{ d.u[1:4] }} {{ d.u|length }} {{ d.u.upper() }} {{ d.u|title }} {{ d.u[-2:] }} {{ d.u.split() }} {{ d.u.find('w') }})",
     "2",
     true, R"(éll 14 HÉLLO WÖRLD 日本 Héllo Wörld 日本 日本 ['héllo', 'wörld', '日本'] 6)"},
    {R"({{ 'a' < 'b' }} {{ 'B' < 'a' }} {{ [1,2] < [1,3] }} {{ 2 >= 2.0 }})",
     "2",
     true, R"(True True True True)"},
    {R"({% set x = x + 1 %})",
     "2",
     false, R"('x' is undefined)"},
    {R"({% for m in [{'role':'a'}, {'role':'b'}] %}{% if m.role == 'b' %}{{ loop.index0 }}{% endif %}{% endfor %})",
     "2",
     true, R"(1)"},
    {R"({%- for tool in d.tools %}{{- tool.function|tojson(indent=4) }}
{%- endfor %})",
     "2",
     true, R"({
    "name": "f",
    "description": "desc",
    "parameters": {
        "type": "object",
        "properties": {
            "x": {
                "type": "string",
                "enum": [
                    "a",
                    "b"
                ]
            },
            "y": {
                "type": "array",
                "items": {
                    "type": "integer"
                }
            }
        },
        "required": [
            "x"
        ]
    }
})"},
    {R"({{ d.tools[0].function.parameters.required|join(',') }} {{ 'x' in d.tools[0].function.parameters.required }})",
     "2",
     true, R"(x True)"},
    {R"({% if d.tools is defined and d.tools|length > 0 %}yes{% endif %})",
     "2",
     true, R"(yes)"},
    {R"({{ d.b|map('string')|map('upper')|list }})",
     "2",
     true, R"(['1', '2', '3'])"},
    {R"({{ 1 if d.a == 1 else 2 if d.a == 2 else 3 }})",
     "2",
     true, R"(1)"},
    {R"({{ (d.a + 2) * 3 - -1 }} {{ 2 ** 3 ** 2 }} {{ -2 ** 2 }} {{ 10 - 2 - 3 }} {{ 'a' ~ 1 + 2 }})",
     "2",
     false, R"(can only concatenate str (not "int") to str)"},
    {R"({{ d['s'].replace('o', '0', 1) }} {{ d.s.split('o') }} {{ d.s.split('o', 1)[1] }} {{ d.s.lstrip('H') }})",
     "2",
     true, R"(Hell0 World ['Hell', ' W', 'rld']  World ello World)"},
    {R"({{ d.get('nope', {}).get('x', 'dflt') }} {{ d.tools[0]['function']['name'] }})",
     "2",
     true, R"(dflt f)"},
    {R"({% set l = d.b + [4] %}{{ l|length }}{{ l[-1] }} {{ d.b|length }})",
     "2",
     true, R"(44 3)"},
    {R"({% for i in range(10) %}{% if i is divisibleby(3) %}{{ i }}{% endif %}{% endfor %})",
     "2",
     true, R"(0369)"},
    {R"({{ none is none }} {{ none == none }} {{ d.nope is none }} {{ 0 == false }} {{ '' == none }})",
     "2",
     true, R"(True True False True False)"},
    {R"({{ d.b is not string }} {{ d.s is not mapping }} {{ d is not sequence }})",
     "2",
     true, R"(True True False)"},
    {R"({% set ns = namespace(found=false) %}{% for x in d.b %}{% if x == 2 %}{% set ns.found = true %}{% endif %}{% endfor %}{{ ns.found }})",
     "2",
     true, R"(True)"},
    {R"({% for x in d.b %}{% set y = x * 2 %}{{ y }}{% endfor %}[{{ y }}])",
     "2",
     true, R"(246[])"},
    {R"({% if true %}{% set z = 5 %}{% endif %}{{ z }})",
     "2",
     true, R"(5)"},
    {R"({{ d.s|wordcount }} {{ d.b|join }} {{ d.s|center(20) if false else 'c' }})",
     "2",
     true, R"(2 123 c)"},
    {R"({{ d.b|sum(start=10) }} {{ [1.5, 2]|sum }} {{ ['b', 'a']|min }} {{ [{'v': 3}, {'v': 1}]|max(attribute='v') }})",
     "2",
     true, R"(16 3.5 a {'v': 3})"},
    {R"({{ [{'n': 'b', 'v': 2}, {'n': 'a', 'v': 1}]|sort(attribute='n')|map(attribute='v')|list }})",
     "2",
     true, R"([1, 2])"},
    {R"({{ {'b': 2, 'a': 1}|dictsort(by='value', reverse=true) }})",
     "2",
     true, R"([('b', 2), ('a', 1)])"},
    {R"({{ 'abc' * 0 }}|{{ [] * 5 }}|{{ 3 * 'ab' }})",
     "2",
     true, R"(|[]|ababab)"},
    {R"({{ 5 // 2.0 }} {{ 5 % 2.5 }} {{ -5.5 // 2 }} {{ 1 / 3 }} {{ 2.0 ** 0.5 }} {{ 10 ** -1 }})",
     "2",
     true, R"(2.0 0.0 -3.0 0.3333333333333333 1.4142135623730951 0.1)"},
    {R"({{ 'a\nb\r\nc'.splitlines() }} {{ 'x y'.title() }} {{ "o'neil".title() }} {{ 'ab-cd ef'|title }})",
     "2",
     true, R"(['a', 'b', 'c'] X Y O'Neil Ab-Cd Ef)"},
    {R"({{ [1, 2, 3][1:2] }} {{ 'hello'[10:] }} {{ 'hello'[-100:2] }} {{ [1,2,3][::-2] }} {{ [1,2,3][5:1:-1] }})",
     "2",
     true, R"([2]  he [3, 1] [3])"},
    {R"({{ 'abc' if 'b' in 'abc' }} {{ 'z' not in 'abc' }} {{ 1 in {'1': 2} }})",
     "2",
     true, R"(abc True False)"},
    {R"({{ {'k': 1}.items()|list }} {{ {'k': [1]}|items|list }})",
     "2",
     true, R"([('k', 1)] [('k', [1])])"},
    {R"({%- set m = {'role': 'user', 'content': [{'type': 'text', 'text': 'hi'}, {'type': 'image'}]} -%}{%- for c in m.content if c.type == 'text' -%}{{ c.text }}{%- endfor -%})",
     "2",
     true, R"(hi)"},
    {R"({{ '\u2028x'|tojson }} {{ 'x\x7f'|tojson }} {{ 1e100|tojson }} {{ -0.0|tojson }})",
     "2",
     true, R"(" x" "x" 1e+100 -0.0)"},
    {R"({{ 0.1|round(1) }} {{ 1.25|round(1) }} {{ 2.675|round(2) }} {{ 1.5|round(0, 'floor') }} {{ 7|round }})",
     "2",
     true, R"(0.1 1.2 2.67 1.0 7)"},
    {R"({{ 3|float }} {{ '1e3'|float }} {{ 'x'|float }} {{ 'x'|int(7) }} {{ ' 12 '|int }} {{ true|int }} {{ '0x1A'|int }} {{ '1_000'|int }})",
     "2",
     true, R"(3.0 1000.0 0.0 7 12 1 0 1000)"},
    {R"({{ [3, 'a']|sort }})",
     "2",
     false, R"('<' not supported between instances of 'str' and 'int')"},
    {R"({{ x.y if x is defined else 'nx' }})",
     "2",
     true, R"(nx)"},
    {R"({{ [1,2,3]|first }} {{ []|first }}|{{ 'abc'|last }} {{ {'a': 1}|first }})",
     "2",
     true, R"(1 |c a)"},
    {R"({{ ' a '|trim('a ') }}|{{ 'xax'|trim('x') }})",
     "2",
     true, R"(|a)"},
    {R"({% for x in d.b %}{{ x }}{% if not loop.last %}, {% endif %}{% endfor %})",
     "2",
     true, R"(1, 2, 3)"},
    {R"({{ '<'|safe + '<' }} {{ '<' + '<'|safe }} {{ ('<'|safe + '&') is escaped }} {{ '<'|e|e }} {{ ('a'|safe ~ '<') }} {{ ['<'|safe, '<']|join }} {{ '<' is escaped }})",
     "2",
     true, R"(<&lt; &lt;< True &lt; a< << False)"},
    {R"({% set m = {0: 'zero', 512: 'half', 'k': 1} %}{{ m[512] }} {{ m.get(0) }} {{ m }} {{ 0 in m }} {{ '0' in m }} {% for k in m %}{{ k + 1 if k is number else k }},{% endfor %} {{ m|tojson }} {{ m.items()|list }})",
     "2",
     true, R"(half zero {0: 'zero', 512: 'half', 'k': 1} True False 1,513,k, {"0": "zero", "512": "half", "k": 1} [(0, 'zero'), (512, 'half'), ('k', 1)])"},
    {R"({{ none|selectattr('type', 'equalto', 'x')|list }} {{ none|map(attribute='x')|list }} {{ ''|select|list }})",
     "2",
     true, R"([] [] [])"},
};

struct TemplateCase {
  const char* file;  // under chat-templates/
  const char* ctx;   // JSON object
  bool ok;
  const char* want;
};

inline constexpr TemplateCase kToolCases[] = {
    {"Qwen-Qwen2.5-7B-Instruct.jinja",
     R"({"messages": [{"role": "system", "content": "Be brief. /no_think"}, {"role": "user", "content": "Weather in Paris?"}, {"role": "assistant", "content": null, "tool_calls": [{"id": "call12345", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}}]}, {"role": "tool", "tool_call_id": "call12345", "content": "{\"temp\": 21.5}"}, {"role": "assistant", "content": "<think>\nreasoning here\n</think>\n\nIt is 21.5 degrees."}, {"role": "user", "content": "Thanks  "}], "bos_token": "<BOS>", "eos_token": "<EOS>", "add_generation_prompt": true, "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Get the weather <now> & 'later'", "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City name, e.g. Zürich"}, "days": {"type": "integer"}}, "required": ["city"]}}}]})",
     true,
     R"(<|im_start|>system
Be brief. /no_think

# Tools

You may call one or more functions to assist with the user query.

You are provided with function signatures within <tools></tools> XML tags:
<tools>
{"type": "function", "function": {"name": "get_weather", "description": "Get the weather <now> & 'later'", "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City name, e.g. Zürich"}, "days": {"type": "integer"}}, "required": ["city"]}}}
</tools>

For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:
<tool_call>
{"name": <function-name>, "arguments": <args-json-object>}
</tool_call><|im_end|>
<|im_start|>user
Weather in Paris?<|im_end|>
<|im_start|>assistant
<tool_call>
{"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}
</tool_call><|im_end|>
<|im_start|>user
<tool_response>
{"temp": 21.5}
</tool_response><|im_end|>
<|im_start|>assistant
<think>
reasoning here
</think>

It is 21.5 degrees.<|im_end|>
<|im_start|>user
Thanks  <|im_end|>
<|im_start|>assistant
)"},
    {"Qwen-Qwen3-0.6B.jinja",
     R"({"messages": [{"role": "system", "content": "Be brief. /no_think"}, {"role": "user", "content": "Weather in Paris?"}, {"role": "assistant", "content": null, "tool_calls": [{"id": "call12345", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}}]}, {"role": "tool", "tool_call_id": "call12345", "content": "{\"temp\": 21.5}"}, {"role": "assistant", "content": "<think>\nreasoning here\n</think>\n\nIt is 21.5 degrees."}, {"role": "user", "content": "Thanks  "}], "bos_token": "<BOS>", "eos_token": "<EOS>", "add_generation_prompt": false, "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Get the weather <now> & 'later'", "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City name, e.g. Zürich"}, "days": {"type": "integer"}}, "required": ["city"]}}}]})",
     false,
     R"(argument of type 'NoneType' is not iterable)"},
    {"Qwen-Qwen3-0.6B.jinja",
     R"({"messages": [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "<think>r1</think>a1"}, {"role": "user", "content": "q2"}, {"role": "assistant", "content": "a2", "reasoning_content": "r2"}], "bos_token": "<BOS>", "eos_token": "<EOS>", "add_generation_prompt": true, "enable_thinking": false})",
     true,
     R"(<|im_start|>user
q1<|im_end|>
<|im_start|>assistant
a1<|im_end|>
<|im_start|>user
q2<|im_end|>
<|im_start|>assistant
<think>
r2
</think>

a2<|im_end|>
<|im_start|>assistant
<think>

</think>

)"},
    {"meta-llama-Llama-3.1-8B-Instruct.jinja",
     R"({"messages": [{"role": "system", "content": "Be brief. /no_think"}, {"role": "user", "content": "Weather in Paris?"}, {"role": "assistant", "content": null, "tool_calls": [{"id": "call12345", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}}]}, {"role": "tool", "tool_call_id": "call12345", "content": "{\"temp\": 21.5}"}, {"role": "assistant", "content": "<think>\nreasoning here\n</think>\n\nIt is 21.5 degrees."}, {"role": "user", "content": "Thanks  "}], "bos_token": "<BOS>", "eos_token": "<EOS>", "add_generation_prompt": true, "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Get the weather <now> & 'later'", "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City name, e.g. Zürich"}, "days": {"type": "integer"}}, "required": ["city"]}}}], "tools_in_user_message": false, "builtin_tools": ["code_interpreter", "brave_search"]})",
     true,
     R"(<BOS><|start_header_id|>system<|end_header_id|>

Environment: ipython
Tools: brave_search

Cutting Knowledge Date: December 2023
Today Date: 26 Jul 2024

You have access to the following functions. To call a function, please respond with JSON for a function call.Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.Do not use variables.

{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather <now> & 'later'",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {
                    "type": "string",
                    "description": "City name, e.g. Zürich"
                },
                "days": {
                    "type": "integer"
                }
            },
            "required": [
                "city"
            ]
        }
    }
}

Be brief. /no_think<|eot_id|><|start_header_id|>user<|end_header_id|>

Weather in Paris?<|eot_id|><|start_header_id|>assistant<|end_header_id|>

{"name": "get_weather", "parameters": {"city": "Paris", "days": 2}}<|eom_id|><|start_header_id|>ipython<|end_header_id|>

"{\"temp\": 21.5}"<|eot_id|><|start_header_id|>assistant<|end_header_id|>

<think>
reasoning here
</think>

It is 21.5 degrees.<|eot_id|><|start_header_id|>user<|end_header_id|>

Thanks<|eot_id|><|start_header_id|>assistant<|end_header_id|>

)"},
    {"meta-llama-Llama-3.1-8B-Instruct.jinja",
     R"({"messages": [{"role": "system", "content": "Be brief. /no_think"}, {"role": "user", "content": "Weather in Paris?"}, {"role": "assistant", "content": null, "tool_calls": [{"id": "call12345", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}}]}, {"role": "tool", "tool_call_id": "call12345", "content": "{\"temp\": 21.5}"}, {"role": "assistant", "content": "<think>\nreasoning here\n</think>\n\nIt is 21.5 degrees."}, {"role": "user", "content": "Thanks  "}], "bos_token": "<BOS>", "eos_token": "<EOS>", "add_generation_prompt": true, "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Get the weather <now> & 'later'", "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City name, e.g. Zürich"}, "days": {"type": "integer"}}, "required": ["city"]}}}]})",
     true,
     R"(<BOS><|start_header_id|>system<|end_header_id|>

Environment: ipython
Cutting Knowledge Date: December 2023
Today Date: 26 Jul 2024

Be brief. /no_think<|eot_id|><|start_header_id|>user<|end_header_id|>

Given the following functions, please respond with a JSON for a function call with its proper arguments that best answers the given prompt.

Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.Do not use variables.

{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather <now> & 'later'",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {
                    "type": "string",
                    "description": "City name, e.g. Zürich"
                },
                "days": {
                    "type": "integer"
                }
            },
            "required": [
                "city"
            ]
        }
    }
}

Weather in Paris?<|eot_id|><|start_header_id|>assistant<|end_header_id|>

{"name": "get_weather", "parameters": {"city": "Paris", "days": 2}}<|eot_id|><|start_header_id|>ipython<|end_header_id|>

"{\"temp\": 21.5}"<|eot_id|><|start_header_id|>assistant<|end_header_id|>

<think>
reasoning here
</think>

It is 21.5 degrees.<|eot_id|><|start_header_id|>user<|end_header_id|>

Thanks<|eot_id|><|start_header_id|>assistant<|end_header_id|>

)"},
    {"meta-llama-Llama-3.2-3B-Instruct.jinja",
     R"({"messages": [{"role": "system", "content": "Be brief. /no_think"}, {"role": "user", "content": "Weather in Paris?"}, {"role": "assistant", "content": "", "tool_calls": [{"id": "call12345", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]}, {"role": "tool", "tool_call_id": "call12345", "content": "{\"temp\": 21.5}"}, {"role": "assistant", "content": "<think>\nreasoning here\n</think>\n\nIt is 21.5 degrees."}, {"role": "user", "content": "Thanks  "}], "bos_token": "<BOS>", "eos_token": "<EOS>", "add_generation_prompt": false, "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Get the weather <now> & 'later'", "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City name, e.g. Zürich"}, "days": {"type": "integer"}}, "required": ["city"]}}}]})",
     true,
     R"(<BOS><|start_header_id|>system<|end_header_id|>

Environment: ipython
Cutting Knowledge Date: December 2023
Today Date: 26 Jul 2024

Be brief. /no_think<|eot_id|><|start_header_id|>user<|end_header_id|>

Given the following functions, please respond with a JSON for a function call with its proper arguments that best answers the given prompt.

Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.Do not use variables.

{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather <now> & 'later'",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {
                    "type": "string",
                    "description": "City name, e.g. Zürich"
                },
                "days": {
                    "type": "integer"
                }
            },
            "required": [
                "city"
            ]
        }
    }
}

Weather in Paris?<|eot_id|><|start_header_id|>assistant<|end_header_id|>

{"name": "get_weather", "parameters": "{\"city\": \"Paris\"}"}<|eot_id|><|start_header_id|>ipython<|end_header_id|>

"{\"temp\": 21.5}"<|eot_id|><|start_header_id|>assistant<|end_header_id|>

<think>
reasoning here
</think>

It is 21.5 degrees.<|eot_id|><|start_header_id|>user<|end_header_id|>

Thanks<|eot_id|>)"},
    {"Mistral-Small-3.2-24B-Instruct-2506.jinja",
     R"({"messages": [{"role": "system", "content": "Be brief. /no_think"}, {"role": "user", "content": "Weather in Paris?"}, {"role": "assistant", "content": null, "tool_calls": [{"id": "call12345", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}}]}, {"role": "tool", "tool_call_id": "call12345", "content": "{\"temp\": 21.5}"}, {"role": "assistant", "content": "<think>\nreasoning here\n</think>\n\nIt is 21.5 degrees."}, {"role": "user", "content": "Thanks  "}], "bos_token": "<BOS>", "eos_token": "<EOS>", "add_generation_prompt": true, "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Get the weather <now> & 'later'", "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City name, e.g. Zürich"}, "days": {"type": "integer"}}, "required": ["city"]}}}]})",
     true,
     R"(<BOS>[SYSTEM_PROMPT]Be brief. /no_think[/SYSTEM_PROMPT][INST]Weather in Paris?[/INST][TOOL_CALLS]get_weather[CALL_ID]call12345[ARGS]{"city": "Paris", "days": 2}<EOS>[TOOL_RESULTS]call12345[TOOL_CONTENT]{"temp": 21.5}[/TOOL_RESULTS]<think>
reasoning here
</think>

It is 21.5 degrees.<EOS>[AVAILABLE_TOOLS][{"type": "function", "function": {"name": "get_weather", "description": "Get the weather <now> & 'later'", "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City name, e.g. Zürich"}, "days": {"type": "integer"}}, "required": ["city"]}}}][/AVAILABLE_TOOLS][INST]Thanks  [/INST])"},
    {"Mistral-Small-3.2-24B-Instruct-2506.jinja",
     R"({"messages": [{"role": "user", "content": [{"type": "text", "text": "Describe"}, {"type": "image"}, {"type": "text", "text": " this."}]}], "bos_token": "<BOS>", "eos_token": "<EOS>", "add_generation_prompt": true})",
     true,
     R"(<BOS>[SYSTEM_PROMPT]You are Mistral Small 3, a Large Language Model (LLM) created by Mistral AI, a French startup headquartered in Paris.
Your knowledge base was last updated on 2023-10-01. The current date is 26 Jul 2024.

When you're not sure about some information or when the user's request requires up-to-date or specific data, you must use the available tools to fetch the information. Do not hesitate to use tools whenever they can provide a more accurate or complete response. If no relevant tools are available, then clearly state that you don't have the information and avoid making up anything.

If the user's question is not clear, ambiguous, or does not provide enough context for you to accurately answer the question, you do not try to answer it right away and you rather ask the user to clarify their request (e.g. "What are some good restaurants around me?" => "Where are you?" or "When is the next flight to Tokyo" => "Where do you travel from?").
You are always very attentive to dates, and when asked about information at specific dates, you discard information that is at another date.
You follow these instructions in all languages, and always respond to the user in the language they use or request.
Next sections describe the capabilities that you have.

# WEB BROWSING INSTRUCTIONS

You cannot perform any web search or access internet to open URLs, links etc. If it seems like the user is expecting you to do so, you clarify the situation and ask the user to copy paste the text directly in the chat.

# MULTI-MODAL INSTRUCTIONS

You have the ability to read images, but you cannot generate images. You also cannot transcribe audio files or videos.
You cannot read nor transcribe audio files or videos.

# TOOL CALLING INSTRUCTIONS

You may have access to tools that you can use to fetch information or perform actions. You must use these tools in the following situations:

1. When the request requires up-to-date information.
2. When the request requires specific data that you do not have in your knowledge base.
3. When the request involves actions that you cannot perform without tools.

Always prioritize using tools to provide the most accurate and helpful response. If tools are not available, inform the user that you cannot perform the requested action at the moment.[/SYSTEM_PROMPT][INST]Describe[IMG] this.[/INST])"},
    {"deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja",
     R"({"messages": [{"role": "system", "content": "Be brief. /no_think"}, {"role": "user", "content": "Weather in Paris?"}, {"role": "assistant", "content": null, "tool_calls": [{"id": "call12345", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}}]}, {"role": "tool", "tool_call_id": "call12345", "content": "{\"temp\": 21.5}"}, {"role": "assistant", "content": "<think>\nreasoning here\n</think>\n\nIt is 21.5 degrees."}, {"role": "user", "content": "Thanks  "}], "bos_token": "<BOS>", "eos_token": "<EOS>", "add_generation_prompt": true})",
     false,
     R"(can only concatenate str (not "dict") to str)"},
    {"HuggingFaceTB-SmolLM3-3B.jinja",
     R"({"messages": [{"role": "system", "content": "Be brief. /no_think"}, {"role": "user", "content": "Weather in Paris?"}, {"role": "assistant", "content": null, "tool_calls": [{"id": "call12345", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}}]}, {"role": "tool", "tool_call_id": "call12345", "content": "{\"temp\": 21.5}"}, {"role": "assistant", "content": "<think>\nreasoning here\n</think>\n\nIt is 21.5 degrees."}, {"role": "user", "content": "Thanks  "}], "bos_token": "<BOS>", "eos_token": "<EOS>", "add_generation_prompt": true, "enable_thinking": false})",
     true,
     R"(<|im_start|>system
## Metadata

Knowledge Cutoff Date: June 2025
Reasoning Mode: /no_think

## Custom Instructions

Be brief.

<|im_end|>
<|im_start|>user
Weather in Paris?<|im_end|>
<|im_start|>assistant
<think>

</think>
<|im_end|>
<|im_start|>user
{"temp": 21.5}<|im_end|>
<|im_start|>assistant
<think>

</think>
<think>
reasoning here
</think>

It is 21.5 degrees.<|im_end|>
<|im_start|>user
Thanks  <|im_end|>
<|im_start|>assistant
<think>

</think>
)"},
    {"google-gemma-2-2b-it.jinja",
     R"({"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], "bos_token": "<BOS>", "eos_token": "<EOS>", "add_generation_prompt": true})",
     false,
     R"(Conversation roles must alternate user/assistant/user/assistant/...)"},
    {"HuggingFaceTB-SmolLM3-3B.jinja",
     R"({"messages": [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "<think>r1</think>a1"}, {"role": "user", "content": "q2"}, {"role": "assistant", "content": "a2", "reasoning_content": "r2"}], "bos_token": "<BOS>", "eos_token": "<EOS>", "add_generation_prompt": false})",
     true,
     R"(<|im_start|>system
## Metadata

Knowledge Cutoff Date: June 2025
Reasoning Mode: /think

## Custom Instructions

You are a helpful AI assistant named SmolLM, trained by Hugging Face. Your role as an assistant involves thoroughly exploring questions through a systematic thinking process before providing the final precise and accurate solutions. This requires engaging in a comprehensive cycle of analysis, summarizing, exploration, reassessment, reflection, backtracking, and iteration to develop well-considered thinking process. Please structure your response into two main sections: Thought and Solution using the specified format: <think> Thought section </think> Solution section. In the Thought section, detail your reasoning process in steps. Each step should include detailed considerations such as analysing questions, summarizing relevant findings, brainstorming new ideas, verifying the accuracy of the current steps, refining any errors, and revisiting previous steps. In the Solution section, based on various attempts, explorations, and reflections from the Thought section, systematically present the final solution that you deem correct. The Solution section should be logical, accurate, and concise and detail necessary steps needed to reach the conclusion.

<|im_end|>
<|im_start|>user
q1<|im_end|>
<|im_start|>assistant
<think>r1</think>a1<|im_end|>
<|im_start|>user
q2<|im_end|>
<|im_start|>assistant
a2<|im_end|>
)"},
};

}  // namespace weft::tokenizer::testing
