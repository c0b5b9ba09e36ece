"""PDF documents (monthly reports, waiting-room posters) from the same HTML as their pages.

WeasyPrint lays the page out with its print stylesheet, so what prints from the browser and
what goes out as a PDF are one template. It needs Pango from the system (Debian:
libpango-1.0-0, libpangoft2-1.0-0 and a font such as fonts-dejavu-core; run.sh installs them),
so it is imported on first use: a server without Pango runs everything except these documents
and says so in one line.
"""

from __future__ import annotations

from fleet_server.core.errors import PdfUnavailable


def render_pdf(html: str, *, base_url: str | None = None) -> bytes:
    """``html`` as an A4 PDF (the page size and margins come from the document's ``@page`` rule).

    ``base_url`` resolves relative links (stylesheets, images); pass the static folder's URI.
    """
    try:
        import weasyprint
    except OSError as exc:  # WeasyPrint is installed, Pango is not
        raise PdfUnavailable(
            "PDF documents need Pango: apt-get install libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core "
            f"({exc})") from exc
    document = weasyprint.HTML(string=html, base_url=base_url)
    pdf = document.write_pdf(pdf_identifier=None)
    assert pdf is not None  # write_pdf without a target returns the bytes
    return pdf
