"""The monthly report as HTML and as a PDF: one body template (report_body.html) inside the
dashboard's page (report_page.html, printable: report.css's print rules) and inside a bare
A4 document (report_pdf.html) that WeasyPrint lays out (fleet_server.web.pdf).

Texts and formats are the current language's (fleet_server.core.i18n): a request's, or the
subscriber's inside ``i18n.using(lang)`` when the fleet loop mails it.
"""

from __future__ import annotations

from datetime import date

from babel.dates import format_date

from fleet_server.core import i18n
from fleet_server.core.i18n import N_
from fleet_server.results.monthly_report import MonthlyReport
from fleet_server.web import report_charts
from fleet_server.web.pdf import render_pdf
from fleet_server.web.templating import STATIC_DIR, templates

SCOPE_NAMES = {"station": N_("Station"), "county": N_("Wellbeing county"), "municipality": N_("Municipality"),
               "area": N_("Service area"), "group": N_("Group")}


def month_label(month: date) -> str:
    """The month by name in the reader's language: "marraskuu 2026", "november 2026", "November 2026"."""
    return format_date(month, format="LLLL yyyy", locale=i18n.babel_locale())


def filename(report: MonthlyReport) -> str:
    return f"palaute-{report.scope.kind}-{report.scope.id}-{report.month:%Y-%m}.pdf"


def context(report: MonthlyReport) -> dict:
    """What report_body.html reads: the report, its charts and labels."""
    return {
        "r": report,
        "scope_label": i18n.gettext(SCOPE_NAMES.get(report.scope.level, SCOPE_NAMES["group"])),
        "month_label": month_label(report.month),
        "trend_svg": report_charts.trend_svg(report.trend, report.minimum, report.granularity),
        "heatmap_svg": report_charts.heatmap_svg(report.heatmap, report.heat_max, report.minimum),
        "chart_legend": report_charts.legend_text(report.minimum),
        "made_at": i18n.moment(report.made_at),
    }


def pdf_html(report: MonthlyReport) -> str:
    """The bare A4 document the PDF is made from."""
    return templates.env.get_template("report_pdf.html").render(**context(report))


def report_pdf(report: MonthlyReport) -> bytes:
    return render_pdf(pdf_html(report), base_url=STATIC_DIR.as_uri() + "/")
