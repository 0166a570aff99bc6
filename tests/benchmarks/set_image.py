"""Point one service of a host's compose project at another image, as an operator would by hand,
and set environment values of it (KEY=VALUE, optional).

Run on the host: python3 - COMPOSE_FILE SERVICE IMAGE [KEY=VALUE ...] < set_image.py. The compose file
is JSON after its comment lines (what the compose_release module writes); the comments are kept.
"""
import json
import sys

path, service, image = sys.argv[1:4]
with open(path, encoding="utf-8") as handle:
    lines = handle.read().split("\n")
project = json.loads("\n".join(line for line in lines if not line.startswith("#")))
project["services"][service]["image"] = image
for pair in sys.argv[4:]:
    key, _, value = pair.partition("=")
    project["services"][service].setdefault("environment", {})[key] = value
with open(path, "w", encoding="utf-8") as handle:
    handle.write("\n".join(line for line in lines if line.startswith("#")) + "\n" + json.dumps(project, indent=2) + "\n")
