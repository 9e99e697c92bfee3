// Draws the Trend page's chart from the JSON the server embedded in #trend-data (no inline
// script: the page's Content-Security-Policy allows only this app's files). Chart.js is
// shipped in static/vendor (MIT, see chart.js-LICENSE.md).
(function () {
  "use strict";
  var source = document.getElementById("trend-data");
  var canvas = document.getElementById("trend-chart");
  if (!source || !canvas || typeof Chart === "undefined") { return; }
  var data = JSON.parse(source.textContent);
  var datasets = data.created.map(function (series) {
    return { type: "bar", label: series.label, data: series.data, backgroundColor: series.colour, stack: "created", yAxisID: "y" };
  });
  datasets.push(
    { type: "line", label: "Processed", data: data.processed, borderColor: "#2f855a", backgroundColor: "#2f855a", tension: 0.2, stack: "processed", yAxisID: "y" },
    { type: "line", label: "Flagged", data: data.flagged, borderColor: "#c05621", backgroundColor: "#c05621", tension: 0.2, stack: "flagged", yAxisID: "y" },
    { type: "line", label: "Backfill misses", data: data.misses, borderColor: "#c53030", backgroundColor: "#c53030", tension: 0.2, stack: "backfill misses", yAxisID: "y" },
    { type: "line", label: "Median label → RMA (min)", data: data.median_minutes, borderColor: "#4a5568", borderDash: [6, 4], backgroundColor: "#4a5568", spanGaps: true, yAxisID: "minutes" }
  );
  var chart = new Chart(canvas, {
    data: { labels: data.labels, datasets: datasets },
    options: {
      animation: false,
      maintainAspectRatio: false,
      interaction: { mode: "index", intersect: false },
      scales: {
        x: { stacked: true },
        y: { stacked: true, beginAtZero: true, title: { display: true, text: "returns" } },
        minutes: { position: "right", beginAtZero: true, grid: { drawOnChartArea: false }, title: { display: true, text: "minutes" } }
      }
    }
  });
  canvas.setAttribute("data-ready", String(chart.data.labels.length));
})();
