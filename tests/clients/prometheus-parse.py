"""Scrapes a /metrics endpoint and parses it with prometheus_client's own text-format parser
(the Prometheus project's Python client). Prints {family name: [type, value]} as JSON (the
parser names a counter's sample `<family>_total`); fails if the text does not parse.
Usage: python3 prometheus-parse.py <metrics url>"""
import json
import sys
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

with urllib.request.urlopen(sys.argv[1], timeout=30) as resp:
    assert resp.headers["Content-Type"].startswith("text/plain"), resp.headers["Content-Type"]
    text = resp.read().decode()

out = {}
for family in text_string_to_metric_families(text):
    assert family.documentation, f"{family.name} has no HELP"
    assert len(family.samples) == 1, family
    out[family.name] = [family.type, family.samples[0].value]
print(json.dumps(out))
