// agentrt UI: node clicks on the workflow graph and live updates of a running solve.
// Written for this project, no dependencies. It never builds markup from data: every
// fragment it inserts was rendered (and escaped) by the server's templates.
"use strict";

(function () {
  const root = document.getElementById("trace");
  if (!root) return;

  function showNode(round, node) {
    const panels = document.querySelectorAll("#steps details.step");
    let first = null;
    let shown = 0;
    panels.forEach(function (p) {
      const match = p.dataset.node === node && p.dataset.round === round;
      p.hidden = !match;
      p.open = match;
      if (match) { shown += 1; if (!first) first = p; }
    });
    document.querySelectorAll("svg.graph .node").forEach(function (g) {
      g.classList.toggle("selected", g.dataset.node === node && g.dataset.round === round);
    });
    const label = document.getElementById("step-filter");
    label.textContent = "node " + node + ", round " + round + ": " + shown + " step(s)";
    label.hidden = false;
    document.getElementById("show-all").hidden = false;
    if (first) { first.scrollIntoView({ block: "nearest" }); first.classList.add("flash"); }
  }

  function showAll() {
    document.querySelectorAll("#steps details.step").forEach(function (p) {
      p.hidden = false; p.classList.remove("flash");
    });
    document.querySelectorAll("svg.graph .node.selected").forEach(function (g) {
      g.classList.remove("selected");
    });
    document.getElementById("step-filter").hidden = true;
    document.getElementById("show-all").hidden = true;
  }

  root.addEventListener("click", function (ev) {
    const g = ev.target.closest ? ev.target.closest("svg.graph .node") : null;
    if (g) showNode(g.dataset.round, g.dataset.node);
  });
  root.addEventListener("keydown", function (ev) {
    const g = ev.target.closest ? ev.target.closest("svg.graph .node") : null;
    if (g && (ev.key === "Enter" || ev.key === " ")) { ev.preventDefault(); showNode(g.dataset.round, g.dataset.node); }
  });
  document.getElementById("show-all").addEventListener("click", showAll);

  if (root.dataset.live !== "yes" || !window.EventSource) return;
  const indicator = document.getElementById("live-indicator");
  indicator.hidden = false;
  const url = "/ui/api/traces/" + encodeURIComponent(root.dataset.trace) +
    "/events?after=" + encodeURIComponent(root.dataset.last);
  const source = new EventSource(url);
  source.addEventListener("update", function (ev) {
    const u = JSON.parse(ev.data);
    document.getElementById("trace-header").innerHTML = u.header;
    if (u.graph !== undefined) document.getElementById("graph").innerHTML = u.graph;
    if (u.decisions !== undefined) document.getElementById("decision-box").innerHTML = u.decisions;
    const steps = document.getElementById("steps");
    u.steps.forEach(function (html) { steps.insertAdjacentHTML("beforeend", html); });
    root.dataset.last = String(u.last);
  });
  function stop(text) {
    source.close();
    indicator.textContent = text;
    root.dataset.live = "ended";
  }
  source.addEventListener("end", function (ev) { stop("finished: " + JSON.parse(ev.data).status); });
  source.addEventListener("failure", function (ev) { stop("stopped following: " + JSON.parse(ev.data).message); });
})();
