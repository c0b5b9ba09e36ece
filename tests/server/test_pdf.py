"""The PDF renderer the reports and posters share: real WeasyPrint, read back with PDFium."""

from PIL import Image

from fleet_server.web.pdf import render_pdf
from tests.support.pdf import pdf_pages, pdf_text, pdf_to_png


def test_html_becomes_an_a4_pdf_with_its_text_and_drawing(tmp_path):
    html = """<!doctype html><html lang="sv"><head><title>Rapport</title>
    <style>@page { size: A4; margin: 15mm }</style></head>
    <body><h1>Kelviå hälsostation</h1><p>Nöjda 87 %</p>
    <svg width="200" height="60"><rect width="200" height="60" fill="#000"/></svg></body></html>"""
    pdf = render_pdf(html)
    assert pdf.startswith(b"%PDF-")
    assert pdf_pages(pdf) == 1
    text = pdf_text(pdf)
    assert "Kelviå hälsostation" in text and "Nöjda 87 %" in text
    (png,) = pdf_to_png(pdf, tmp_path)
    image = Image.open(png).convert("L")
    width, height = image.size
    assert abs(height / width - 297 / 210) < 0.01  # A4 portrait
    assert image.getextrema()[0] == 0  # the black drawing is on the page, not only the text
