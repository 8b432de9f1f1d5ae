"""The stand-in's own practice directory, read from lettergate scenario fixture files.

A real EHR has its own directory (ODS code -> MESH mailbox, from MESH endpoint lookup or
configuration). The stand-in reads the `practices:` of the fixture files it is given, so it
knows the same practices as the scenarios. Only the small YAML subset those files use is
understood: nested mappings by indentation, scalars, quotes and `#` comments (no PyYAML in the
interop venv).
"""


def _strip_comment(line):
    quote = None
    for i, ch in enumerate(line):
        if ch in "'\"":
            quote = None if quote == ch else (quote or ch)
        elif ch == "#" and quote is None and (i == 0 or line[i - 1] in " \t"):
            return line[:i]
    return line


def _scalar(text):
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def parse_mapping(text):
    """Nested dicts of strings from indentation-structured `key: value` lines."""
    root = {}
    stack = [(-1, root)]
    for raw in text.splitlines():
        line = _strip_comment(raw).rstrip()
        if not line.strip() or line.strip().startswith("- ") or ":" not in line:
            continue
        indent = len(line) - len(line.lstrip())
        key, _, value = line.strip().partition(":")
        while stack and stack[-1][0] >= indent:
            stack.pop()
        parent = stack[-1][1]
        if value.strip():
            parent[_scalar(key)] = _scalar(value)
        else:
            child = {}
            parent[_scalar(key)] = child
            stack.append((indent, child))
    return root


class Practice:
    def __init__(self, key, fields):
        self.key = key
        self.ods = fields["ods"]
        self.name = fields.get("name", self.ods)
        self.mailbox = fields.get("mailbox", self.ods + "HC001")
        self.status = fields.get("status", "open")
        self.merged_into = fields.get("merged_into")
        self.route = fields.get("route", "mesh")


class Directory:
    def __init__(self):
        self.by_key = {}
        self.by_ods = {}

    def load(self, path):
        with open(path, encoding="utf-8") as handle:
            doc = parse_mapping(handle.read())
        for key, fields in (doc.get("practices") or {}).items():
            practice = Practice(key, fields)
            self.by_key[key] = practice
            self.by_ods[practice.ods] = practice

    def lookup(self, ods):
        return self.by_ods.get(ods)

    def delivering(self, ods):
        """The practice that receives letters for `ods` (follows merges); None if closed/unknown."""
        practice = self.by_ods.get(ods)
        seen = set()
        while practice is not None and practice.merged_into and practice.key not in seen:
            seen.add(practice.key)
            practice = self.by_key.get(practice.merged_into)
        if practice is None or practice.status == "closed":
            return None
        return practice
