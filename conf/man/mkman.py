#!/usr/bin/python3
"""Make a man(7) page from a Markdown source in conf/man/.

    mkman.py SOURCE.md > PAGE

The config key reference is written once, in README.md: a source pulls a
section of another Markdown file in, headings and all, with a line

    @include ../../README.md "Configuration reference"

(the path relative to the source). The section runs to the next heading
of its own level or above; its sub-headings land below the heading the
directive stands under.

The source's first line names the page: "% NAME SECTION". Markdown
understood: "#" headings (level 1 is .SH, 2 is .SS), paragraphs, a line
ending in a backslash (a line break), "-" lists, ``` code blocks,
tables, `code`, **bold**, *emphasis*, [text](url). A table becomes a
tagged list: the first column is the tag, the last the text, the ones
between go in parentheses after the tag; a table whose first column is
"section" is grouped under one "[section]" line per section.

The date is $SOURCE_DATE_EPOCH's, else that of the newest input file;
the version is MPGW_VERSION from gateway/main.c.
"""

import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MANUALS = {"1": "User Commands", "5": "File Formats Manual",
           "8": "System Manager's Manual"}
INLINE = re.compile(r"`([^`]+)`|\*\*(.+?)\*\*|\*([^*\s][^*]*)\*|"
                    r"\[([^\]]+)\]\(([^)]+)\)")


class SourceError(Exception):
    pass


def escape(text):
    """Roff-escape plain text: backslashes, and anything beyond ASCII as
    a \\[uXXXX] glyph (both groff and mandoc know them)."""
    out = []
    for ch in text.replace("\\", "\\e"):
        out.append(ch if ord(ch) < 128 else "\\[u%04X]" % ord(ch))
    return "".join(out)


def inline(text):
    """Markdown inline markup to roff font escapes."""
    out, pos = [], 0
    for m in INLINE.finditer(text):
        out.append(escape(text[pos:m.start()]))
        code, bold, em, link, url = m.groups()
        if code is not None:
            out.append("\\fB%s\\fR" % escape(code))
        elif bold is not None:
            out.append("\\fB%s\\fR" % inline(bold))
        elif em is not None:
            out.append("\\fI%s\\fR" % inline(em))
        elif url.startswith(("http://", "https://")):
            out.append("%s <%s>" % (inline(link), escape(url)))
        else:
            out.append(inline(link))   # a file of the tree: its name says it
        pos = m.end()
    out.append(escape(text[pos:]))
    return "".join(out)


def text_line(s):
    """A text line that roff will not take for a request."""
    return "\\&" + s if s[:1] in (".", "'") else s


def read_section(path, title):
    """The lines of path's section headed title (heading included)."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    fence, start, level = False, None, 0
    for i, line in enumerate(lines):
        if line.startswith("```"):
            fence = not fence
        if fence:
            continue
        m = re.match(r"(#+)\s+(.*)", line)
        if not m:
            continue
        if start is None and m.group(2).strip() == title:
            start, level = i, len(m.group(1))
        elif start is not None and len(m.group(1)) <= level:
            return lines[start:i]
    if start is None:
        raise SourceError("%s: no section \"%s\"" % (path, title))
    return lines[start:]


def expand(path, inputs):
    """The source's lines with every @include replaced, headings of an
    included section moved to sit below the heading above the directive."""
    inputs.append(path)
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    out, cur, fence = [], 0, False
    for line in lines:
        if line.startswith("```"):
            fence = not fence
        m = None if fence else re.match(r"@include\s+(\S+)\s+\"([^\"]+)\"\s*$",
                                        line)
        if m is None:
            h = None if fence else re.match(r"(#+)\s", line)
            if h:
                cur = len(h.group(1))
            out.append(line)
            continue
        inc = os.path.join(os.path.dirname(path), m.group(1))
        inputs.append(inc)
        sect = read_section(inc, m.group(2))
        base = len(re.match(r"#+", sect[0]).group(0))
        sub_fence = False
        for s in sect[1:]:
            if s.startswith("```"):
                sub_fence = not sub_fence
            h = None if sub_fence else re.match(r"(#+)(\s.*)", s)
            if h:
                s = "#" * (cur + len(h.group(1)) - base) + h.group(2)
            out.append(s)
    return out


def split_row(line):
    cells = line.strip()
    if cells.startswith("|"):
        cells = cells[1:]
    if cells.endswith("|"):
        cells = cells[:-1]
    return [c.strip() for c in cells.split("|")]


def para_break(out):
    """Start a paragraph, unless a heading just did (mandoc warns on .PP
    right after .SH or .SS)."""
    if not out or not out[-1].startswith((".SH", ".SS", ".PP")):
        out.append(".PP")


def render_table(rows, out):
    header = [h.lower() for h in split_row(rows[0])]
    if len(rows) < 2 or not re.fullmatch(r"[\s|:-]+", rows[1]):
        raise SourceError("table without a separator row: %s" % rows[0])
    grouped = header[0] == "section"
    first = 1 if grouped else 0
    group = None
    for row in rows[2:]:
        cells = split_row(row)
        if len(cells) != len(header):
            raise SourceError("table row has %d cells, header %d: %s"
                              % (len(cells), len(header), row))
        if grouped and cells[0] != group:
            group = cells[0]
            para_break(out)
            out.append("\\fB[%s]\\fR" % escape(group))
        tag = inline(cells[first])
        extra = []
        for i in range(first + 1, len(cells) - 1):
            if not cells[i]:
                continue
            v = inline(cells[i])
            extra.append(v if i == first + 1 else "%s %s" % (header[i], v))
        if extra:
            tag += " (%s)" % "; ".join(extra)
        out += [".TP", text_line(tag)]
        if len(cells) > first + 1:
            out.append(text_line(inline(cells[-1])))


def render(lines, out):
    """Markdown lines to roff lines appended to out."""
    i, n = 0, len(lines)
    para = []

    def flush():
        if para:
            para_break(out)
            # Whole lines between breaks: a code span may cross a newline.
            chunks, cur = [], []
            for p in para:
                cur.append(p[:-1].rstrip() if p.endswith("\\") else p)
                if p.endswith("\\"):
                    chunks.append(" ".join(cur))
                    cur = []
            if cur:
                chunks.append(" ".join(cur))
            for j, c in enumerate(chunks):
                if j > 0:
                    out.append(".br")
                out.append(text_line(inline(c)))
            para.clear()

    while i < n:
        line = lines[i]
        if line.startswith("```"):
            flush()
            para_break(out)
            out += [".RS 4", ".nf"]
            i += 1
            while i < n and not lines[i].startswith("```"):
                out.append(text_line(escape(lines[i])))
                i += 1
            out += [".fi", ".RE"]
            i += 1
            continue
        m = re.match(r"(#+)\s+(.*)", line)
        if m:
            flush()
            title = m.group(2).strip()
            if len(m.group(1)) == 1:
                out.append('.SH "%s"' % inline(title.upper()))
            elif len(m.group(1)) == 2:
                out.append('.SS "%s"' % inline(title))
            else:
                para_break(out)
                out.append("\\fB%s\\fR" % inline(title))
            i += 1
            continue
        if line.lstrip().startswith("|"):
            flush()
            rows = []
            while i < n and lines[i].lstrip().startswith("|"):
                rows.append(lines[i])
                i += 1
            render_table(rows, out)
            continue
        m = re.match(r"(\s*)(-|\d+\.)\s+(.*)", line)
        if m and not para:
            flush()
            bullet = "\\(bu" if m.group(2) == "-" else m.group(2)
            item = [m.group(3)]
            i += 1
            while i < n and lines[i].startswith(" ") and lines[i].strip() \
                    and not re.match(r"\s*(-|\d+\.)\s", lines[i]):
                item.append(lines[i].strip())
                i += 1
            out += [".IP %s 4" % bullet, text_line(inline(" ".join(item)))]
            continue
        if not line.strip():
            flush()
            i += 1
            continue
        para.append(line.strip())
        i += 1
    flush()


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: mkman.py SOURCE.md > PAGE")
    src = sys.argv[1]
    inputs = []
    try:
        lines = expand(src, inputs)
        m = re.match(r"%\s+(\S+)\s+(\d)\s*$", lines[0])
        if not m:
            raise SourceError("%s:1: expected \"% NAME SECTION\"" % src)
        name, section = m.groups()
        epoch = os.environ.get("SOURCE_DATE_EPOCH")
        if epoch is None:
            epoch = max(os.stat(p).st_mtime for p in inputs)
        date = time.strftime("%Y-%m-%d", time.gmtime(int(float(epoch))))
        version = "mpgw"
        try:
            with open(os.path.join(ROOT, "gateway", "main.c")) as f:
                v = re.search(r'#define MPGW_VERSION "([^"]+)"', f.read())
            if v:
                version = "mpgw %s" % v.group(1)
        except OSError:
            pass
        out = ['.\\" Made by conf/man/mkman.py from %s; edit that instead.'
               % os.path.relpath(src, ROOT),
               '.TH "%s" "%s" "%s" "%s" "%s"' % (
                   escape(name.upper()), section, date, version,
                   MANUALS.get(section, ""))]
        render(lines[1:], out)
    except (OSError, SourceError) as e:
        sys.exit("mkman.py: %s" % e)
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
