#!/usr/bin/env python3
"""Generate pybernetes/machinery/protobuf_schema.json: the protobuf field tables of
the Kubernetes built-in types, which machinery/protobuf.py needs to decode
`application/vnd.kubernetes.protobuf` request bodies.

Regenerate (offline) from a Kubernetes source tree:

    python tools/gen_protobuf_schema.py /path/to/kubernetes            # a checkout
    python tools/gen_protobuf_schema.py /path/to/kubernetes/.git       # a bare/git dir (reads HEAD)
    python tools/gen_protobuf_schema.py /path/to/api /path/to/apimachinery   # the staging repos

Each SOURCE is a directory or a git directory; every `generated.proto` under it whose
package is `k8s.io.api.*` or `k8s.io.apimachinery.pkg.*` is read, together with the Go
files beside it (struct tags tell the JSON name, `omitempty`, whether the field is a Go
pointer, and whether an embedded struct is inlined in JSON) and the package GroupName
(register.go, or doc.go's +groupName) which maps an apiVersion to its protobuf package.
Use a v1.33-or-later tree: field numbers never change meaning, newer trees only add fields.
Output: `-o FILE` (default: the schema file in the package).

Output layout (compact on purpose):
  {"groups":   {"apps/v1": "k8s.io.api.apps.v1", "v1": "k8s.io.api.core.v1", ...},
   "lists":    [message names whose Go type is a named slice, JSON = the items array],
   "messages": {"<full message name>": {"<number>": [json_name, type, flags], ...}}}
type is a scalar (string, int32, int64, bool, bytes, ...) or a full message name; for a
map it is the value type (keys are always strings in Kubernetes). flags letters:
r repeated, m map, p Go pointer, o omitempty, i inlined embedded struct, s skipped in JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "pybernetes" / "machinery" / "protobuf_schema.json"
SCALARS = {"string", "bytes", "bool", "int32", "int64", "uint32", "uint64", "sint32",
           "sint64", "fixed32", "fixed64", "sfixed32", "sfixed64", "double", "float"}
WANTED_PREFIXES = ("k8s.io.api.", "k8s.io.apimachinery.pkg.")
SKIP_PACKAGES = ("testapigroup",)
SKIP_DIRS = (".git", "vendor", "_output", "node_modules")


class Tree:
    """Read files from a checkout directory or from HEAD of a git directory."""

    def __init__(self, root: str):
        self.root = root
        self.git = os.path.isfile(os.path.join(root, "HEAD")) and \
            os.path.isdir(os.path.join(root, "objects"))

    def files(self) -> list[str]:
        if self.git:
            out = subprocess.run(
                ["git", f"--git-dir={self.root}", "ls-tree", "-r", "--name-only", "HEAD"],
                check=True, capture_output=True, text=True).stdout
            return out.splitlines()
        found = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS]
            rel = os.path.relpath(dirpath, self.root)
            found += [os.path.normpath(os.path.join(rel, f)) for f in filenames]
        return found

    def read(self, path: str) -> str:
        if self.git:
            return subprocess.run(["git", f"--git-dir={self.root}", "show", f"HEAD:{path}"],
                                  check=True, capture_output=True, text=True).stdout
        return Path(self.root, path).read_text()


# ---- .proto parsing -------------------------------------------------------------------

FIELD_RE = re.compile(r"^(optional|repeated|required)?\s*([\w.]+)\s+(\w+)\s*=\s*(\d+)")
MAP_RE = re.compile(r"^map<\s*([\w.]+)\s*,\s*([\w.]+)\s*>\s+(\w+)\s*=\s*(\d+)")


def _strip_comments(text: str) -> list[str]:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return [line.split("//", 1)[0].strip() for line in text.splitlines()]


def _resolve(type_name: str, package: str) -> str:
    if type_name in SCALARS:
        return type_name
    if type_name.startswith("."):
        return type_name[1:]
    return f"{package}.{type_name}"


def parse_proto(text: str) -> tuple[str, dict[str, dict[int, dict]]]:
    """Return (package, {message full name: {number: field}}) for one proto file."""
    package, messages, stack = "", {}, []
    for line in _strip_comments(text):
        if not line:
            continue
        if m := re.match(r"^package\s+([\w.]+);", line):
            package = m.group(1)
        elif m := re.match(r"^message\s+(\w+)\s*\{", line):
            stack.append(m.group(1))
            messages[f"{package}." + ".".join(stack)] = {}
        elif line.startswith("}") and stack:
            stack.pop()
        elif stack and (m := MAP_RE.match(line)):
            if m.group(1) != "string":
                raise ValueError(f"non-string map key in {stack[-1]}: {line}")
            field = {"name": m.group(3), "type": _resolve(m.group(2), package), "map": True}
            messages[f"{package}." + ".".join(stack)][int(m.group(4))] = field
        elif stack and (m := FIELD_RE.match(line)):
            field = {"name": m.group(3), "type": _resolve(m.group(2), package),
                     "repeated": m.group(1) == "repeated"}
            messages[f"{package}." + ".".join(stack)][int(m.group(4))] = field
    return package, messages


# ---- Go struct tags -------------------------------------------------------------------

TAG_RE = re.compile(r'(\w+):"([^"]*)"')


def parse_go_structs(text: str) -> tuple[dict[str, dict[int, dict]], set[str]]:
    """Struct name -> {protobuf number: go facts}; plus the named slice types."""
    structs: dict[str, dict[int, dict]] = {}
    slices = set(re.findall(r"^type\s+(\w+)\s+\[\]", text, flags=re.M))
    current, depth = None, 0
    for raw in text.splitlines():
        line = raw.strip()
        if current is None:
            if m := re.match(r"^type\s+(\w+)\s+struct\s*\{\s*$", line):
                current, depth = m.group(1), 1
                structs[current] = {}
            continue
        if line.startswith("//"):
            continue
        depth += line.count("{") - line.count("}")
        if depth <= 0:
            current = None
            continue
        if depth == 1 and "`" in line:
            fact = _go_field(line)
            if fact is not None:
                structs[current][fact.pop("number")] = fact
    return structs, slices


def _go_field(line: str) -> dict | None:
    head, tag = line.split("`")[0:2]
    tags = dict(TAG_RE.findall(tag))
    if "protobuf" not in tags or "," not in tags["protobuf"]:
        return None
    parts = head.split()
    embedded = len(parts) == 1
    go_type = parts[-1]
    json_tag = tags.get("json", "").split(",")
    json_name = json_tag[0]
    return {
        "number": int(tags["protobuf"].split(",")[1]),
        "json": json_name,
        "omitempty": "omitempty" in json_tag[1:],
        "pointer": go_type.startswith("*"),
        "inline": embedded and json_name == "",
    }


def _group_name(go_sources: dict[str, str]) -> str | None:
    """The API group of a package: register.go's GroupName, else doc.go's +groupName."""
    for text in go_sources.values():
        if m := re.search(r'^\s*(?:const\s+)?GroupName\s*=\s*"([\w.\-]*)"', text, flags=re.M):
            return m.group(1)
    if "doc.go" in go_sources:
        if m := re.search(r"^//\s*\+groupName=([\w.\-]*)\s*$", go_sources["doc.go"], flags=re.M):
            return m.group(1)
    return None


# ---- assembly -------------------------------------------------------------------------

def _flags(field: dict, fact: dict | None) -> str:
    flags = ("r" if field.get("repeated") else "") + ("m" if field.get("map") else "")
    if fact is not None:
        flags += ("p" if fact["pointer"] else "") + ("o" if fact["omitempty"] else "")
        flags += ("i" if fact["inline"] else "") + ("s" if fact["json"] == "-" else "")
    return flags


def collect(trees: list[Tree]) -> dict:
    messages: dict[str, dict[str, list]] = {}
    groups: dict[str, str] = {}
    lists: set[str] = set()
    missing = 0
    for tree in trees:
        files = tree.files()
        by_dir: dict[str, list[str]] = {}
        for f in files:
            by_dir.setdefault(os.path.dirname(f), []).append(os.path.basename(f))
        for f in files:
            if not f.endswith("/generated.proto") and f != "generated.proto":
                continue
            package, parsed = parse_proto(tree.read(f))
            if not package.startswith(WANTED_PREFIXES) or any(s in package for s in SKIP_PACKAGES):
                continue
            folder = os.path.dirname(f)
            go_sources = _read_go(tree, folder, by_dir.get(folder, []))
            go_structs, go_slices = _go_facts(go_sources)
            group = _group_name(go_sources)
            if group is not None:
                version = package.rsplit(".", 1)[-1]
                groups[f"{group}/{version}" if group else version] = package
            for full, fields in parsed.items():
                short = full[len(package) + 1:]
                facts = go_structs.get(short, {})
                if short in go_slices and list(fields) == [1] and fields[1].get("repeated"):
                    lists.add(full)
                table = {}
                for number, field in sorted(fields.items()):
                    fact = facts.get(number)
                    missing += fact is None
                    name = fact["json"] if fact and fact["json"] not in ("", "-") else field["name"]
                    table[str(number)] = [name, field["type"], _flags(field, fact)]
                messages[full] = table
    print(f"{len(messages)} messages, {len(groups)} group versions, "
          f"{missing} fields without Go facts", file=sys.stderr)
    return {"groups": dict(sorted(groups.items())), "lists": sorted(lists),
            "messages": dict(sorted(messages.items()))}


def _read_go(tree: Tree, folder: str, names: list[str]) -> dict[str, str]:
    """The hand-written Go sources of a package folder, by file name."""
    skip = ("zz_", "generated")
    return {name: tree.read(os.path.join(folder, name)) for name in names
            if name.endswith(".go") and not name.endswith("_test.go") and not name.startswith(skip)}


def _go_facts(go_sources: dict[str, str]) -> tuple[dict, set]:
    structs: dict[str, dict[int, dict]] = {}
    slices: set[str] = set()
    for text in go_sources.values():
        s, sl = parse_go_structs(text)
        structs.update(s)
        slices |= sl
    return structs, slices


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sources", nargs="+",
                        help="kubernetes checkout / git dir, or the api and apimachinery repos")
    parser.add_argument("-o", "--output", default=str(OUT))
    args = parser.parse_args(argv)
    schema = collect([Tree(s) for s in args.sources])
    if not schema["messages"]:
        print("no generated.proto found", file=sys.stderr)
        return 1
    Path(args.output).write_text(json.dumps(schema, separators=(",", ":")) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
