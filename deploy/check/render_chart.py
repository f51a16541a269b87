"""Renders a Helm chart offline with real Helm (helm-python-sdk) and prints the manifests as JSON.

    python render_chart.py CHART_DIR [VALUES_JSON]

Prints {"template path": "manifest", ...}; on a render error prints {"error": "..."} and exits 1.
A separate process from the lint (helm-sdkpy): each package embeds its own Go runtime.
"""

import json
import sys

import helm_python

chart = helm_python.Chart.load(sys.argv[1])
values = json.loads(sys.argv[2]) if len(sys.argv) > 2 else None
try:
    manifests = chart.render(values, name="rc", namespace="chat", is_install=True)
except helm_python.HelmError as e:
    print(json.dumps({"error": str(e)}))
    sys.exit(1)
print(json.dumps(manifests))
