"""Reading generated PDFs in tests: each page as a PNG picture and as text (PDFium, as Chromium reads them)."""

from __future__ import annotations

from pathlib import Path

import pypdfium2


def pdf_pages(pdf: bytes) -> int:
    return len(pypdfium2.PdfDocument(pdf))


def pdf_text(pdf: bytes) -> str:
    """All the text of the document, page after page (what a reader could select and copy)."""
    document = pypdfium2.PdfDocument(pdf)
    return "\n".join(page.get_textpage().get_text_range() for page in document)


def pdf_to_png(pdf: bytes, out_dir: Path, *, stem: str = "page", scale: float = 1.5) -> list[Path]:
    """Render every page to ``out_dir/<stem>-<n>.png`` and return the paths (the PNG a person would see)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for number, page in enumerate(pypdfium2.PdfDocument(pdf), start=1):
        path = out_dir / f"{stem}-{number}.png"
        page.render(scale=scale).to_pil().save(path)
        paths.append(path)
    return paths
