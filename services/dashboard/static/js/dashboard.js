/* orglife dashboard: the charts (Apache ECharts, served from /static/vendor) drawn from the
   JSON each page embeds beside them; htmx refreshes the health panel. Everything on the page
   works without this script: the tables hold every figure the charts show. */
(function () {
  "use strict";
  var COLORS = { red: "#c62828", yellow: "#f0b429", green: "#43a047", blue: "#1d4ed8",
                 grey: "#9ca3af" };
  var percent = function (v) { return (v * 100).toFixed(1) + "%"; };

  var builders = {
    unevenness: function (d) {
      return {
        animation: false,
        tooltip: { trigger: "axis", valueFormatter: function (v) {
          return typeof v === "number" && v <= 1 ? percent(v) : v; } },
        legend: { top: 0, data: ["平均达标率", "最低", "最高", "低于" + d.threshold + "的支部"] },
        grid: { left: 50, right: 50, top: 50, bottom: 30 },
        xAxis: { type: "category", data: d.categories },
        yAxis: [{ type: "value", min: 0, max: 1, axisLabel: { formatter: percent } },
                { type: "value", minInterval: 1, name: "支部数" }],
        series: [
          { name: "平均达标率", type: "bar", data: d.mean, itemStyle: { color: COLORS.blue },
            markLine: { silent: true, symbol: "none", lineStyle: { color: COLORS.red },
                        data: [{ yAxis: d.threshold }], label: { formatter: percent(d.threshold) } } },
          { name: "最低", type: "bar", data: d.min, itemStyle: { color: COLORS.red } },
          { name: "最高", type: "bar", data: d.max, itemStyle: { color: COLORS.green } },
          { name: "低于" + d.threshold + "的支部", type: "line", yAxisIndex: 1, data: d.below,
            itemStyle: { color: COLORS.yellow } }
        ]
      };
    },
    lights: function (d) {
      var series = ["red", "yellow", "green"].map(function (light) {
        return { name: { red: "红灯", yellow: "黄灯", green: "绿灯" }[light], type: "bar",
                 stack: "lights", data: d[light], itemStyle: { color: COLORS[light] },
                 barMaxWidth: 18 };
      });
      return {
        animation: false, tooltip: { trigger: "axis" }, legend: { top: 0 },
        grid: { left: 110, right: 30, top: 30, bottom: 20 },
        xAxis: { type: "value", minInterval: 1 },
        yAxis: { type: "category", data: d.townships, inverse: true },
        series: series
      };
    },
    slots: function (d) {
      return {
        animation: false, tooltip: { trigger: "axis" }, legend: { top: 0 },
        grid: { left: 100, right: 20, top: 30, bottom: 20 },
        xAxis: { type: "value", minInterval: 1 },
        yAxis: { type: "category", data: d.types, inverse: true },
        series: [
          { name: "已达标", type: "bar", stack: "s", data: d.met, itemStyle: { color: COLORS.green } },
          { name: "未达标", type: "bar", stack: "s", data: d.missed, itemStyle: { color: COLORS.red } }
        ]
      };
    },
    score: function (d) {
      return {
        animation: false, tooltip: { trigger: "axis" },
        grid: { left: 40, right: 20, top: 20, bottom: 30 },
        xAxis: { type: "time", min: d.year + "-01-01", max: d.year + "-12-31" },
        yAxis: { type: "value", scale: true, name: "累计积分" },
        series: [{ name: "累计积分", type: "line", step: "end", data: d.points,
                   itemStyle: { color: COLORS.blue }, areaStyle: { opacity: 0.08 } }]
      };
    }
  };

  function draw(root) {
    if (!window.echarts) { return; }
    root.querySelectorAll("[data-chart]").forEach(function (el) {
      if (el.getAttribute("data-drawn")) { return; }
      var source = document.getElementById(el.getAttribute("data-source"));
      var build = builders[el.getAttribute("data-chart")];
      if (!source || !build) { return; }
      var chart = window.echarts.init(el, null, { renderer: "svg" });
      chart.setOption(build(JSON.parse(source.textContent)));
      el.setAttribute("data-drawn", "1");
      charts.push(chart);
    });
  }
  var charts = [];
  document.addEventListener("DOMContentLoaded", function () {
    draw(document);
    document.body.setAttribute("data-charts", String(charts.length));
  });
  document.addEventListener("htmx:afterSettle", function (event) { draw(event.target); });
  window.addEventListener("resize", function () {
    charts.forEach(function (chart) { chart.resize(); });
  });
}());
