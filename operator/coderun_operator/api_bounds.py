"""Hard bounds of the CodeRun API, shared by the CRD, the settings and the web UI.

The CRD (crds/coderun.yaml) declares the same numbers; a test keeps the two in step.
Settings may only tighten these bounds, never widen them.
"""

# Schema bounds count characters (Unicode code points), as OpenAPI's maxLength does.
MAX_CODE_CHARS = 65536
MAX_STDIN_CHARS = 65536
# Stored output is decoded text; every captured byte becomes at most one character,
# so a byte cap up to this value always fits the schema.
MAX_OUTPUT_CHARS = 131072
MAX_MESSAGE_CHARS = 4096
MAX_TIMEOUT_SECONDS = 3600
MAX_TTL_SECONDS = 7 * 24 * 3600

API_GROUP = "coderun.dev"
API_VERSION = "v1alpha1"
KIND = "CodeRun"
PLURAL = "coderuns"
