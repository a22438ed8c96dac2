"""The user's documents: read Markdown, plain text, HTML and PDF; chunk them along headings, paragraphs and sentences.

Every chunk keeps where it came from (section path and line span), so an answer can name its source and
a source can open the passage. A file that cannot be read raises `Unreadable` with the reason a person
can act on (binary, encrypted or broken PDF, unknown encoding, too big).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from evo_tr.text import split_sentences

TEXT_SUFFIXES = {".md": "markdown", ".markdown": "markdown", ".txt": "text", ".text": "text", ".rst": "text"}
HTML_SUFFIXES = {".html", ".htm", ".xhtml"}
PDF_SUFFIXES = {".pdf"}
SUPPORTED = sorted({*TEXT_SUFFIXES, *HTML_SUFFIXES, *PDF_SUFFIXES})
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_SETEXT = re.compile(r"^(=+|-+)\s*$")
CONTROL_SHARE = 0.01  # more control characters than this in decoded text: not a text file in that encoding


class Unreadable(Exception):
    """A file that is skipped, with the reason in words."""


@dataclass(frozen=True)
class Document:
    """A file's text as lines (1-based line numbers kept for sources), its kind and content hash."""

    path: Path
    kind: str
    lines: list[str]
    sha256: str
    size: int
    encoding: str = "utf-8"
    pages: list[int] = field(default_factory=list)  # PDF: the page of each line


@dataclass(frozen=True)
class Chunk:
    """A passage to store: its text, the heading path above it, and the lines it spans (1-based, inclusive)."""

    text: str
    section: str
    line_start: int
    line_end: int


# -- reading ------------------------------------------------------------------------------------
def decode_text(raw: bytes, name: str) -> tuple[str, str]:
    """UTF-8 (with or without BOM), UTF-16 with a BOM, else Windows-1254 (Turkish) if it reads as text."""
    if b"\x00" in raw[:8192] and not raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise Unreadable("binary file (it contains NUL bytes), not text")
    for encoding, bom in (("utf-8-sig", b"\xef\xbb\xbf"), ("utf-16", b"\xff\xfe"), ("utf-16", b"\xfe\xff")):
        if raw.startswith(bom):
            try:
                return raw.decode(encoding), encoding
            except UnicodeDecodeError as exc:
                raise Unreadable(f"starts with a {encoding} byte-order mark but does not decode ({exc.reason})") from None
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        text = raw.decode("cp1254")
    except UnicodeDecodeError:
        raise Unreadable("unknown text encoding (neither UTF-8 nor Windows-1254); save it as UTF-8") from None
    controls = sum(1 for ch in text if ord(ch) < 32 and ch not in "\n\r\t\f")
    if controls > CONTROL_SHARE * max(1, len(text)):
        raise Unreadable("unknown text encoding (it decodes only to control characters); save it as UTF-8")
    return text, "cp1254"


class _HTMLText(HTMLParser):
    """Visible text of an HTML page, headings as Markdown headings, blocks as paragraphs."""

    BLOCKS = {"p", "div", "li", "tr", "br", "section", "article", "blockquote", "pre", "table", "ul", "ol", "dd", "dt"}
    SKIP = {"script", "style", "noscript", "template", "svg", "head"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip = 0
        self.heading = 0

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self.skip += 1
        elif re.fullmatch(r"h[1-6]", tag):
            self.heading = int(tag[1])
            self.out.append("\n\n" + "#" * self.heading + " ")
        elif tag in self.BLOCKS:
            self.out.append("\n\n")

    def handle_endtag(self, tag):
        if tag in self.SKIP:
            self.skip = max(0, self.skip - 1)
        elif re.fullmatch(r"h[1-6]", tag):
            self.heading = 0
            self.out.append("\n\n")
        elif tag in self.BLOCKS:
            self.out.append("\n\n")

    def handle_data(self, data):
        if not self.skip:
            self.out.append(" ".join(data.split()) if self.heading else re.sub(r"[ \t\r\f\v]+", " ", data))

    def text(self) -> str:
        joined = "".join(self.out)
        lines = [line.strip() for line in joined.split("\n")]
        return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _read_pdf(path: Path) -> tuple[list[str], list[int]]:
    import logging

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # a broken file is reported once, as Unreadable

    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted:
            try:
                if not reader.decrypt(""):
                    raise Unreadable("encrypted PDF (a password is needed); save an unprotected copy")
            except Unreadable:
                raise
            except Exception:
                raise Unreadable("encrypted PDF (a password is needed); save an unprotected copy") from None
        lines: list[str] = []
        pages: list[int] = []
        for number, page in enumerate(reader.pages, start=1):
            for line in (page.extract_text() or "").splitlines():
                lines.append(line.rstrip())
                pages.append(number)
            lines.append("")
            pages.append(number)
    except Unreadable:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise Unreadable(f"broken PDF ({type(exc).__name__}: {str(exc)[:120]})") from None
    if not any(line.strip() for line in lines):
        raise Unreadable("PDF without a text layer (a scan?); run OCR on it first")
    return lines, pages


def read_document(path: Path, max_bytes: int) -> Document:
    """The file's text, or Unreadable with the reason."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:
        raise Unreadable(f"unsupported file type {suffix or '(none)'} (supported: {', '.join(SUPPORTED)})")
    size = path.stat().st_size
    if size > max_bytes:
        raise Unreadable(f"{size / 2**20:.1f} MB is over the {max_bytes / 2**20:.0f} MB limit (knowledge.max_file_mb)")
    if size == 0:
        raise Unreadable("empty file")
    raw = path.read_bytes()
    sha = hashlib.sha256(raw).hexdigest()
    if suffix in PDF_SUFFIXES:
        if not raw.startswith(b"%PDF"):
            raise Unreadable("broken PDF (no %PDF header)")
        lines, pages = _read_pdf(path)
        return Document(path, "pdf", lines, sha, size, "pdf", pages)
    text, encoding = decode_text(raw, path.name)
    kind = TEXT_SUFFIXES.get(suffix, "html")
    if suffix in HTML_SUFFIXES:
        parser = _HTMLText()
        parser.feed(text)
        parser.close()
        text = parser.text()
        kind = "html"
    if not text.strip():
        raise Unreadable("no text in it")
    return Document(path, kind, text.replace("\r\n", "\n").replace("\r", "\n").split("\n"), sha, size, encoding)


# -- chunking -----------------------------------------------------------------------------------
@dataclass
class _Block:
    text: str
    section: str
    start: int
    end: int


def _blocks(doc: Document) -> list[_Block]:
    """Paragraphs with the heading path above them (Markdown ATX and setext headings, HTML headings; PDF pages)."""
    blocks: list[_Block] = []
    headings: list[tuple[int, str]] = []
    para: list[str] = []
    start = 0

    def flush(end: int) -> None:
        if para:
            text = " ".join(" ".join(p.split()) for p in para).strip()
            blocks.append(_Block(text, " › ".join(h for _, h in headings), start, end))
            para.clear()

    lines = doc.lines
    i = 0
    while i < len(lines):
        line, number = lines[i], i + 1
        if doc.kind == "pdf" and doc.pages and (i == 0 or doc.pages[i] != doc.pages[i - 1]):
            flush(number - 1)
            headings = [(1, f"Sayfa {doc.pages[i]}")]
        atx = _HEADING.match(line) if doc.kind in ("markdown", "html") else None
        setext = (doc.kind == "markdown" and not para and line.strip() and i + 1 < len(lines) and _SETEXT.match(lines[i + 1]))
        if atx or setext:
            flush(number - 1)
            level = len(atx.group(1)) if atx else (1 if lines[i + 1].strip().startswith("=") else 2)
            title = atx.group(2).strip() if atx else line.strip()
            headings = [h for h in headings if h[0] < level] + [(level, title)]
            i += 1 if atx else 2
            continue
        if not line.strip():
            flush(number - 1)
        else:
            if not para:
                start = number
            para.append(line)
        i += 1
    flush(len(lines))
    return [b for b in blocks if b.text]


def chunk_document(doc: Document, chunk_chars: int) -> list[Chunk]:
    """Chunks of about `chunk_chars`: whole paragraphs of one section packed together; a paragraph that is too
    long is cut at Turkish sentence ends (a sentence longer than a chunk, at a space)."""
    chunks: list[Chunk] = []
    current: list[_Block] = []

    def emit() -> None:
        if current:
            chunks.append(Chunk(" ".join(b.text for b in current), current[0].section, current[0].start, current[-1].end))
            current.clear()

    for block in _blocks(doc):
        pieces = [block] if len(block.text) <= chunk_chars else _split_block(block, chunk_chars)
        for piece in pieces:
            size = sum(len(b.text) + 1 for b in current)
            if current and (current[0].section != piece.section or size + len(piece.text) > chunk_chars):
                emit()
            current.append(piece)
    emit()
    return chunks


def _split_block(block: _Block, chunk_chars: int) -> list[_Block]:
    out: list[_Block] = []
    buf = ""
    for sentence in split_sentences(block.text):
        while len(sentence) > chunk_chars:
            cut = sentence.rfind(" ", 0, chunk_chars)
            cut = cut if cut > chunk_chars // 2 else chunk_chars
            if buf:
                out.append(_Block(buf, block.section, block.start, block.end))
                buf = ""
            out.append(_Block(sentence[:cut].strip(), block.section, block.start, block.end))
            sentence = sentence[cut:].strip()
        if buf and len(buf) + 1 + len(sentence) > chunk_chars:
            out.append(_Block(buf, block.section, block.start, block.end))
            buf = ""
        buf = f"{buf} {sentence}".strip()
    if buf:
        out.append(_Block(buf, block.section, block.start, block.end))
    return out
