"""Point one service of a host's compose project at another image, as an operator would by hand.

Run on the host: python3 - COMPOSE_FILE SERVICE IMAGE < set_image.py. The compose file is JSON after
its comment lines (what the compose_release module writes); the comments are kept.
"""
import json
import sys

path, service, image = sys.argv[1:]
with open(path, encoding="utf-8") as handle:
    lines = handle.read().split("\n")
project = json.loads("\n".join(line for line in lines if not line.startswith("#")))
project["services"][service]["image"] = image
with open(path, "w", encoding="utf-8") as handle:
    handle.write("\n".join(line for line in lines if line.startswith("#")) + "\n" + json.dumps(project, indent=2) + "\n")
