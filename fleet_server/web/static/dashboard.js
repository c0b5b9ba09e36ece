/* Dashboard charts (Chart.js, vendored). Meaning never rests on colour alone:
   lines differ by dash pattern and point shape, offline/closed bands are hatched
   or grey AND labelled, every chart has a table next to it. */
(function () {
  "use strict";
  if (!window.Chart) return;
  Chart.defaults.font.family = '"DejaVu Sans", system-ui, sans-serif';
  Chart.defaults.animation = false;
  const DASHES = [[], [8, 4], [2, 3], [12, 3, 2, 3], [4, 4], [1, 6]];
  const POINTS = ["circle", "rect", "triangle", "rectRot", "star", "crossRot"];
  const COLOURS = ["#2166ac", "#b2182b", "#1b7837", "#762a83", "#e08214", "#4d4d4d"];

  function hatch(ctx, colour) {
    const c = document.createElement("canvas");
    c.width = c.height = 8;
    const g = c.getContext("2d");
    g.strokeStyle = colour; g.lineWidth = 2;
    g.beginPath(); g.moveTo(0, 8); g.lineTo(8, 0); g.stroke();
    return ctx.createPattern(c, "repeat");
  }

  // Shade buckets where the kiosk was offline (hatched, "offline") or the station closed (grey, "closed").
  const bands = {
    id: "bands",
    beforeDatasetsDraw(chart, _args, opts) {
      const x = chart.scales.x, area = chart.chartArea, ctx = chart.ctx;
      if (!opts || !opts.offline) return;
      const step = x.width / Math.max(1, chart.data.labels.length);
      ctx.save();
      let previous = null;
      chart.data.labels.forEach((_, i) => {
        const kind = opts.closed[i] ? "closed" : opts.offline[i] ? "offline" : null;
        const first = kind !== previous;  // label a run of equal bands once
        previous = kind;
        if (!kind) return;
        const left = x.getPixelForValue(i) - step / 2;
        ctx.fillStyle = kind === "closed" ? "#e4e7eb" : hatch(ctx, "#9aa3ad");
        ctx.fillRect(left, area.top, step, area.bottom - area.top);
        if (!first) return;
        ctx.fillStyle = "#333"; ctx.font = "10px sans-serif"; ctx.textAlign = "left";
        ctx.save();
        ctx.translate(left + step / 2 + 3, area.top + 4);
        ctx.rotate(Math.PI / 2);  // vertical, so narrow bands stay readable
        ctx.fillText((opts.names && opts.names[kind]) || kind, 0, 0);
        ctx.restore();
      });
      ctx.restore();
    },
  };

  const trendEl = document.getElementById("trend-data");
  if (trendEl) {
    const d = JSON.parse(trendEl.textContent);
    const t = d.text || {};
    new Chart(document.getElementById("trend"), {
      data: {
        labels: d.labels,
        datasets: [
          { type: "bar", label: t.responses_bars || "Responses (bars)", data: d.responses, yAxisID: "y",
            backgroundColor: "rgba(33,102,172,0.55)", borderColor: "#2166ac", borderWidth: 1 },
          { type: "line", label: t.satisfaction_line || "Satisfaction % (line, squares)", data: d.satisfaction, yAxisID: "pct",
            borderColor: "#111", borderDash: [6, 3], pointStyle: "rect", pointRadius: 5, spanGaps: false },
        ],
      },
      options: {
        maintainAspectRatio: false,
        scales: {
          y: { beginAtZero: true, title: { display: true, text: t.responses || "responses" } },
          pct: { position: "right", min: 0, max: 100, grid: { drawOnChartArea: false }, title: { display: true, text: t.satisfaction_pct || "satisfaction %" } },
        },
        plugins: { bands: { offline: d.offline, closed: d.closed, names: { offline: t.offline, closed: t.closed } },
          tooltip: { callbacks: { label: (c) => c.raw === null ? c.dataset.label + ": " + (t.too_few || "too few responses") : c.dataset.label + ": " + c.raw } } },
      },
      plugins: [bands],
    });
  }

  const cmpEl = document.getElementById("compare-data");
  if (cmpEl) {
    const d = JSON.parse(cmpEl.textContent);
    const t = d.text || {};
    new Chart(document.getElementById("cmp-trend"), {
      type: "line",
      data: { labels: d.labels, datasets: d.series.map((s, i) => ({
        label: s.name, data: s.satisfaction, borderColor: COLOURS[i % 6], backgroundColor: COLOURS[i % 6],
        borderDash: DASHES[i % 6], pointStyle: POINTS[i % 6], pointRadius: 5, spanGaps: false })) },
      options: { maintainAspectRatio: false, scales: { y: { min: 0, max: 100, title: { display: true, text: t.satisfaction_pct || "satisfaction %" } } },
        plugins: { legend: { labels: { usePointStyle: true } } } },
    });
    const names = t.answers || ["1 very unhappy", "2 unhappy", "3 happy", "4 very happy"];
    const fills = ["#b2182b", "#ef8a62", "#67a9cf", "#2166ac"];
    new Chart(document.getElementById("cmp-shares"), {
      type: "bar",
      data: { labels: d.shares.map((s) => s.name), datasets: names.map((n, v) => ({
        label: n, data: d.shares.map((s) => s.shares[v]),
        backgroundColor: v % 2 ? fills[v] : null, borderColor: "#333", borderWidth: 1 })) },
      options: { maintainAspectRatio: false, indexAxis: "y",
        scales: { x: { stacked: true, min: 0, max: 100, title: { display: true, text: t.share_axis || "% of responses" } }, y: { stacked: true } } },
      plugins: [{ id: "patterns", beforeInit(chart) {
        chart.data.datasets.forEach((ds, v) => { if (!ds.backgroundColor) ds.backgroundColor = hatch(chart.ctx, fills[v]); });
      } }],
    });
  }
})();
