// Draws every chart of the page from the option JSON the server rendered beside it.
(function () {
  "use strict";
  if (!window.echarts) { return; }
  var charts = [];
  document.querySelectorAll(".chart[data-option]").forEach(function (element) {
    var source = document.getElementById(element.getAttribute("data-option"));
    if (!source) { return; }
    var chart = window.echarts.init(element, null, { renderer: "svg" });
    chart.setOption(JSON.parse(source.textContent));
    charts.push(chart);
  });
  window.addEventListener("resize", function () {
    charts.forEach(function (chart) { chart.resize(); });
  });
})();
